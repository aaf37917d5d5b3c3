"""Deterministic train/val/test split that keeps identical and near-identical inputs in one split."""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneproof.data import Record, Schema

if TYPE_CHECKING:
    from tuneproof.config import AuditConfig

__all__ = ["Split", "split_records", "input_text"]

_PUNCT = re.compile(r"[^\w\s]+")
_SPACE = re.compile(r"\s+")
# Near-duplicate grouping needs inputs of at least this many words. Below 8 words the dedup
# MinHasher falls back to one-word shingles, whose Jaccard measures shared vocabulary rather
# than copying ("question number 3" vs "question number 30" scores 0.5), and union-find would
# chain a whole family of short templated inputs into one group. Shorter inputs are grouped
# by their exact normalized text only.
NEAR_MIN_WORDS = 8


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


def _normalized(record: Record) -> str:
    return _SPACE.sub(" ", _PUNCT.sub(" ", input_text(record).lower())).strip()


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class _UnionFind:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        parent = self.parent
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:  # path compression
            parent[i], i = root, parent[i]
        return root

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def _groups(records: list[Record], near: bool | AuditConfig) -> tuple[list[list[Record]], list[str], str]:
    """Records grouped by exact normalized input, then near-duplicate groups merged (connected
    components of the verified pairs). Returns the groups, a sort key per group, and how."""
    exact: dict[str, list[Record]] = {}
    texts: dict[str, str] = {}
    for r in records:
        text = _normalized(r)
        k = _key(text)
        exact.setdefault(k, []).append(r)
        texts.setdefault(k, text)
    keys = sorted(exact)
    how = "grouped by normalized input text (case, punctuation and spacing ignored)"
    uf = _UnionFind(len(keys))
    if near is not False:
        from tuneproof.audit.dedup import near_duplicate_pairs
        from tuneproof.config import AuditConfig

        cfg = near if isinstance(near, AuditConfig) else AuditConfig()
        eligible = [i for i, k in enumerate(keys) if len(texts[k].split()) >= NEAR_MIN_WORDS]
        pairs = near_duplicate_pairs([texts[keys[i]] for i in eligible], cfg)
        for a, b, _ in pairs:
            uf.union(eligible[a], eligible[b])
        how += (f" and near duplicates (MinHash LSH on up to {cfg.shingle_size}-word shingles, {cfg.num_perm} permutations, "
                f"{cfg.bands} bands, verified shingle Jaccard >= {cfg.jaccard_threshold:g}, inputs of >= {NEAR_MIN_WORDS} "
                f"words; {len(pairs)} verified pairs), connected components as groups")  # fmt: skip
    members: dict[int, list[int]] = {}
    for i in range(len(keys)):
        members.setdefault(uf.find(i), []).append(i)
    # The root is a component's smallest index, so its key is the smallest member key: a group
    # without near duplicates keeps the key (and so the shuffle position) it had before.
    groups = [[r for i in idx for r in exact[keys[i]]] for idx in members.values()]
    return groups, [keys[root] for root in members], how


def _majority_label(group: list[Record]) -> Any:
    counts = Counter(r.fields.get("label") for r in group)
    return min(counts, key=lambda lab: (-counts[lab], str(lab)))  # ties: the label that sorts first


def split_records(
    records: list[Record],
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    stratify: bool = False,
    near_duplicates: bool | AuditConfig = True,
) -> Split:
    """Cut records into train/val/test, deterministically for a seed.

    Records whose input text is the same after lower-casing and removing punctuation and
    extra spaces form one group. Near duplicates join groups too: inputs of at least
    ``NEAR_MIN_WORDS`` words are compared with the audit's MinHash LSH (verified shingle
    Jaccard, :func:`tuneproof.audit.dedup.near_duplicate_pairs`), and the connected components
    of the verified pairs are the groups. A group never straddles two splits, so an edited
    copy of a question can't be both trained on and tested on. With ``stratify``
    (classification), each label is cut separately so every split keeps the label mix; a
    group goes with its majority label.

    Groups are shuffled with the seed and dealt out in that order: a group goes to test (then
    val) when adding it brings that split closer to its target size and it is no larger than
    that target, otherwise onwards; so a very large group ends up in train instead of swamping
    the test set. Without multi-record groups this is the plain seeded shuffle-and-cut.

    Args:
        records: the records to cut.
        val_fraction: share of records for validation.
        test_fraction: share of records for test.
        seed: the shuffle's seed.
        stratify: cut each label separately.
        near_duplicates: ``True`` for the audit's default MinHash settings, an
            :class:`~tuneproof.config.AuditConfig` for its settings, ``False`` for exact grouping only.

    Example:
        >>> s = split_records(records, val_fraction=0.1, test_fraction=0.1, seed=0)  # doctest: +SKIP
        >>> s.method  # doctest: +SKIP
        'grouped by normalized input text ... 3 multi-record groups (largest 4 records) ...'
    """
    groups, keys, how = _groups(records, near_duplicates)
    strata: dict[Any, list[tuple[str, list[Record]]]] = {}
    for k, g in zip(keys, groups):
        strata.setdefault(_majority_label(g) if stratify else None, []).append((k, g))
    train: list[Record] = []
    val: list[Record] = []
    test: list[Record] = []
    rng = random.Random(seed)
    for stratum in sorted(strata, key=str):
        ordered = [g for _, g in sorted(strata[stratum], key=lambda kg: kg[0])]
        rng.shuffle(ordered)
        n = sum(len(g) for g in ordered)
        targets = ((test, round(n * test_fraction)), (val, round(n * val_fraction)))
        counts = [0, 0]
        for g in ordered:
            for slot, (part, target) in enumerate(targets):
                # Take the group when it brings this split closer to its target (for groups of one
                # record: while the split is short of it) and is no larger than the whole target.
                if len(g) <= target and abs(counts[slot] + len(g) - target) < abs(counts[slot] - target):
                    part.extend(g)
                    counts[slot] += len(g)
                    break
            else:
                train.extend(g)
    order = {r.id: i for i, r in enumerate(records)}
    for part in (train, val, test):
        part.sort(key=lambda r: order[r.id])
    multi = [len(g) for g in groups if len(g) > 1]
    how += (f": {len(groups)} groups, {len(multi)} of them multi-record (largest {max(multi, default=1)} records), "
            "each kept in one split")  # fmt: skip
    if stratify:
        how += "; stratified by label, a group going with its majority label"
    return Split(train, val, test, method=how + f"; shuffled with seed {seed}", seed=seed)
