"""Deterministic train/val/test split that keeps identical texts in the same split."""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneproof.data import Record, Schema

__all__ = ["Split", "split_records", "input_text"]

_PUNCT = re.compile(r"[^\w\s]+")
_SPACE = re.compile(r"\s+")


@dataclass
class Split:
    """Records of each split, and how they were cut."""

    train: list[Record]
    val: list[Record]
    test: list[Record] = field(default_factory=list)
    method: str = "grouped by normalized input text, shuffled with the seed"
    seed: int = 0

    def ids(self) -> dict[str, list[str]]:
        return {name: [r.id for r in getattr(self, name)] for name in ("train", "val", "test")}

    def write(self, directory: Path) -> Path:
        """Write ``split.json`` (ids per split) and ``test.jsonl`` (the test records) to ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        out = directory / "split.json"
        out.write_text(json.dumps({"method": self.method, "seed": self.seed, **self.ids()}, indent=1))
        with (directory / "test.jsonl").open("w", encoding="utf-8") as f:
            for r in self.test:
                f.write(json.dumps({"id": r.id, **r.fields, **r.extra}, ensure_ascii=False) + "\n")
        return out


def input_text(record: Record) -> str:
    """The part of a record a model sees as input: text, prompt, instruction+input or user turns."""
    f = record.fields
    if record.schema in (Schema.TEXT, Schema.TEXT_LABEL):
        return str(f["text"])
    if record.schema == Schema.PROMPT_COMPLETION:
        return str(f["prompt"])
    if record.schema == Schema.ALPACA:
        return f"{f['instruction']}\n{f.get('input') or ''}"
    return "\n".join(str(m.get("content", "")) for m in f["messages"] if m.get("role") != "assistant")


def _key(record: Record) -> str:
    text = _SPACE.sub(" ", _PUNCT.sub(" ", input_text(record).lower())).strip()
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def split_records(
    records: list[Record],
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    stratify: bool = False,
) -> Split:
    """Cut records into train/val/test, deterministically for a seed.

    Records whose input text is the same after lower-casing and removing punctuation and
    extra spaces form one group, and a group never straddles two splits, so a duplicated
    question can't be both trained on and tested on. With ``stratify`` (classification),
    each label is cut separately so every split keeps the label mix.

    Example:
        >>> s = split_records(records, val_fraction=0.1, test_fraction=0.1, seed=0)  # doctest: +SKIP
    """
    strata: dict[Any, dict[str, list[Record]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        stratum = r.fields.get("label") if stratify else None
        strata[stratum][_key(r)].append(r)
    train: list[Record] = []
    val: list[Record] = []
    test: list[Record] = []
    rng = random.Random(seed)
    for stratum in sorted(strata, key=str):
        groups = [strata[stratum][k] for k in sorted(strata[stratum])]
        rng.shuffle(groups)
        n = sum(len(g) for g in groups)
        n_test, n_val = round(n * test_fraction), round(n * val_fraction)
        taken = 0
        for g in groups:
            if taken < n_test:
                test.extend(g)
            elif taken < n_test + n_val:
                val.extend(g)
            else:
                train.extend(g)
            taken += len(g)
    order = {r.id: i for i, r in enumerate(records)}
    for part in (train, val, test):
        part.sort(key=lambda r: order[r.id])
    return Split(train, val, test, seed=seed)
