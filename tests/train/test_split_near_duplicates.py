"""The split keeps near-duplicate clusters (edited copies) together, stratifies by label, and is deterministic."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from tuneproof.data import Record, Schema
from tuneproof.train import split_records

VOCAB = [f"w{i}" for i in range(3000)]


def _text(rng: random.Random, n: int = 20) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(n))


def _edited(text: str, rng: random.Random) -> str:
    """One word of the text replaced by a word it doesn't contain."""
    ws = text.split()
    ws[rng.randrange(1, len(ws) - 1)] = "edited"
    return " ".join(ws)


def _where(split) -> dict[str, str]:
    return {r.id: name for name in ("train", "val", "test") for r in getattr(split, name)}


def _tl(i: int, text: str, label: str) -> Record:
    return Record(f"d.jsonl:{i}", Schema.TEXT_LABEL, {"text": text, "label": label})


def _records_with_copies(n: int = 300, copies: int = 40, seed: int = 0) -> tuple[list[Record], list[tuple[str, str]]]:
    rng = random.Random(seed)
    records = [_tl(i, _text(rng), "a" if i % 3 else "b") for i in range(n)]
    pairs = []
    for k, i in enumerate(rng.sample(range(n), copies)):
        j = n + k
        records.append(_tl(j, _edited(records[i].fields["text"], rng), records[i].fields["label"]))
        pairs.append((records[i].id, records[j].id))
    return records, pairs


@pytest.mark.parametrize("stratify", [False, True])
def test_an_edited_copy_never_lands_in_another_split_than_its_original(stratify):
    records, pairs = _records_with_copies()
    for seed in range(6):
        s = split_records(records, val_fraction=0.15, test_fraction=0.2, seed=seed, stratify=stratify)
        where = _where(s)
        apart = [(a, b) for a, b in pairs if where[a] != where[b]]
        assert not apart, f"seed {seed}: edited copies split from their originals: {apart[:3]}"
        assert len(where) == len(records)
        assert "40 of them multi-record (largest 2 records)" in s.method, s.method
        assert "near duplicates (MinHash LSH" in s.method and "verified shingle Jaccard >= 0.5" in s.method


def test_without_near_duplicate_grouping_edited_copies_do_straddle():
    # The control: exact grouping alone lets some copies fall into another split.
    records, pairs = _records_with_copies()
    apart = 0
    for seed in range(6):
        where = _where(split_records(records, val_fraction=0.15, test_fraction=0.2, seed=seed, near_duplicates=False))
        apart += sum(where[a] != where[b] for a, b in pairs)
        assert "near duplicates" not in split_records(records, val_fraction=0.15, test_fraction=0.2, seed=seed,
                                                      near_duplicates=False).method  # fmt: skip
    assert apart > 10


def test_a_chain_of_edits_is_one_group():
    # a ~ b ~ c with a and c further apart: union-find keeps all three together.
    rng = random.Random(1)
    base = _text(rng, 30)
    b = _edited(base, rng)
    ws = b.split()
    ws[-2] = "again"
    c = " ".join(ws)
    records = [_tl(i, _text(rng), "a") for i in range(100)] + [_tl(100, base, "a"), _tl(101, b, "a"), _tl(102, c, "a")]
    for seed in range(5):
        where = _where(split_records(records, val_fraction=0.2, test_fraction=0.2, seed=seed))
        assert where["d.jsonl:100"] == where["d.jsonl:101"] == where["d.jsonl:102"]


def test_stratified_split_keeps_label_shares_and_groups_go_by_majority_label():
    rng = random.Random(3)
    records = [_tl(i, _text(rng), "pos" if i < 240 else "neg") for i in range(400)]  # 60% pos
    # a near-duplicate trio with mixed labels: two neg and one pos, so it goes with neg
    trio = _text(rng)
    records += [_tl(400, trio, "neg"), _tl(401, _edited(trio, rng), "neg"), _tl(402, _edited(trio, rng), "pos")]
    for seed in range(4):
        s = split_records(records, val_fraction=0.1, test_fraction=0.2, seed=seed, stratify=True)
        for name, part, size in (("test", s.test, 81), ("val", s.val, 40)):
            share = Counter(r.fields["label"] for r in part)["pos"] / len(part)
            assert abs(len(part) - size) <= 2, (name, len(part))
            assert 0.57 <= share <= 0.63, (name, share)
        where = _where(s)
        assert where["d.jsonl:400"] == where["d.jsonl:401"] == where["d.jsonl:402"]
        assert "stratified by label, a group going with its majority label" in s.method


def test_split_is_deterministic_for_a_seed():
    records, _ = _records_with_copies(seed=5)
    a = split_records(records, val_fraction=0.1, test_fraction=0.2, seed=11, stratify=True)
    b = split_records(list(records), val_fraction=0.1, test_fraction=0.2, seed=11, stratify=True)
    assert a.ids() == b.ids() and a.method == b.method
    assert a.ids() != split_records(records, val_fraction=0.1, test_fraction=0.2, seed=12, stratify=True).ids()


def test_exact_duplicates_and_short_inputs_behave_as_before():
    # Short inputs (under 8 words) are grouped by exact normalized text only: templated short
    # questions that share most words are not merged into one group.
    recs = [Record(f"d:{i}", Schema.PROMPT_COMPLETION, {"prompt": f"what is item number {i % 50}", "completion": "x"})
            for i in range(150)]  # fmt: skip
    recs += [Record("d:900", Schema.PROMPT_COMPLETION, {"prompt": "What is ITEM number 7?!", "completion": "y"})]
    near = split_records(recs, val_fraction=0.1, test_fraction=0.2, seed=4)
    exact = split_records(recs, val_fraction=0.1, test_fraction=0.2, seed=4, near_duplicates=False)
    assert near.ids() == exact.ids()
    assert "50 groups, 50 of them multi-record (largest 4 records)" in near.method
    where = _where(near)
    assert where["d:900"] == where["d:7"] == where["d:57"] == where["d:107"]
    assert 27 <= len(near.test) <= 33 and 12 <= len(near.val) <= 18


def test_a_very_large_group_goes_to_train_rather_than_swamping_test():
    rng = random.Random(9)
    base = _text(rng, 40)
    cluster = [_tl(i, _edited(base, rng), "a") for i in range(60)]
    others = [_tl(100 + i, _text(rng), "a") for i in range(100)]
    for seed in range(4):
        s = split_records(cluster + others, val_fraction=0.1, test_fraction=0.2, seed=seed)
        assert {r.id for r in cluster} <= {r.id for r in s.train}
        assert 28 <= len(s.test) <= 36 and 12 <= len(s.val) <= 20
