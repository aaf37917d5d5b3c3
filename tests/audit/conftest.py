"""Helpers for the audit tests: write small JSONL fixtures and build check contexts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneproof.audit._base import Context
from tuneproof.audit.embed import HashingEmbedder
from tuneproof.config import AuditConfig
from tuneproof.data import Record, Schema

# Ordinary, clean, distinct records: no check may fire on these (the negative cases).
CLEAN_QA = [
    ("What is a stock dividend?", "A payment a company makes to its shareholders out of its profits."),
    ("How do index funds keep fees low?", "They track a market index passively, so they trade rarely."),
    ("What does a bond's coupon mean?", "It is the yearly interest the issuer pays, as a share of the face value."),
    ("Why do interest rates affect house prices?", "Higher rates make mortgages dearer, so buyers can borrow less."),
    ("What is dollar-cost averaging?", "Investing a fixed amount at regular intervals, whatever the price."),
    ("Is an IRA taxed on withdrawal?", "A traditional IRA is taxed when you withdraw; a Roth IRA is not, after 59 and a half."),
    ("What is a P/E ratio of 15 telling me?", "Investors pay 15 dollars for each dollar of yearly earnings."),
    ("How much should an emergency fund hold?", "Many planners suggest three to six months of essential expenses."),
]


def write_jsonl(path: Path, rows: list[dict | str]) -> Path:
    """Write rows (dicts as JSON, strings verbatim) one per line."""
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write((row if isinstance(row, str) else json.dumps(row, ensure_ascii=False)) + "\n")
    return path


def qa_records(pairs: list[tuple[str, str]], name: str = "t.jsonl") -> list[Record]:
    return [
        Record(f"{name}:{i}", Schema.PROMPT_COMPLETION, {"prompt": p, "completion": c})
        for i, (p, c) in enumerate(pairs, 1)
    ]


def text_records(texts: list[str], name: str = "t.jsonl") -> list[Record]:
    return [Record(f"{name}:{i}", Schema.TEXT, {"text": t}) for i, t in enumerate(texts, 1)]


def context(**kwargs) -> Context:
    """A context that embeds with the hashing embedder (no model load) unless told otherwise."""
    cfg = kwargs.pop("config", None) or AuditConfig()
    ctx = Context(config=cfg, progress=False, **kwargs)
    ctx.embeddings.setdefault("embedder", HashingEmbedder())
    return ctx


@pytest.fixture
def clean_qa():
    return qa_records(CLEAN_QA)
