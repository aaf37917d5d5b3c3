"""The classification pipeline on the tiny BERT when the reference (a linear probe) is already strong.

The label is given away by one distinctive word, so a linear probe on the frozen base
embeddings classifies the test split almost perfectly; a short fine-tune can't beat it, and
the run must end "not proven: do not ship" with the strong reference as the first cause.
"""

from __future__ import annotations

import json

import pytest
import random
from collections import Counter
from pathlib import Path

from tuneproof.pipeline import run

FILLER = "the capital of france is paris rome madrid water boils at one hundred degrees sun rises in east west".split()


def _rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 3 else "neg"  # 2:1, so stratification is visible in the shares
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 4))]
        for _ in range(2):  # twice: mean-pooled random-BERT embeddings then separate it cleanly
            words.insert(rng.randrange(len(words) + 1), "wonderful" if label == "pos" else "dull")
        rows.append({"text": " ".join(words), "label": label})
    return rows


def _labels(path: Path) -> Counter:
    return Counter(json.loads(line)["label"] for line in path.read_text().splitlines())


def test_a_strong_linear_probe_reference_means_not_proven_with_that_cause(tmp_path, tiny_bert_dir):
    data = tmp_path / "reviews.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _rows(180)))
    cfg = {
        "name": "cls",
        "task": "classification",
        "data": {"path": str(data), "val_fraction": 0.2, "test_fraction": 0.3},
        "model": {"name": str(tiny_bert_dir), "method": "full", "max_length": 32},
        "train": {"batch_size": 8, "max_steps": 4, "eval_steps": 2, "bf16": False},
        "eval": {"metric": "accuracy", "bootstrap": 1000},
        # no near_duplicate check: these short texts share most of a 19-word vocabulary, so it would remove most of them
        "audit": {"checks": ["exact_duplicate", "low_quality", "too_long"]},
        "pipeline": {"stages": {"lr_sweep": False, "tune": False}},
        "tracking": {"runs_dir": str(tmp_path / "runs")},
    }
    res = run(cfg)
    rd = res.run_dir
    status = {s["name"]: s["status"] for s in res.stages}
    assert all(status[s] == "done" for s in ("audit", "curate", "split", "baseline", "preflight", "train", "evaluate", "decision")), status
    # the probe is scored on test before training; the preflight's MDE comes from its accuracy
    # there, and the evaluation fits it again on what the tuned model trained on: the same scores
    info = json.loads((rd / "baseline/baseline.json").read_text())
    assert info["reference"] == "probe" and info["metric"] == "accuracy"
    rows = [json.loads(x) for x in (rd / "baseline/records.jsonl").read_text().splitlines()]
    assert len(rows) == info["n"] and sum(r["base"]["accuracy"] for r in rows) / len(rows) == pytest.approx(info["mean"])
    pre = json.loads((rd / "preflight/preflight.json").read_text())
    assert "the linear probe (baseline/records.jsonl)" in json.dumps(pre)

    # the split was stratified: every split keeps the 2:1 label mix of what curation kept
    split = json.loads((rd / "split/split.json").read_text())
    assert split["stratified"] is True and "stratified by label" in split["method"]
    kept = _labels(rd / "curate/kept.jsonl")
    share = kept["pos"] / sum(kept.values())
    for part in ("train", "val", "test"):
        counts = _labels(rd / f"split/{part}.jsonl")
        assert abs(counts["pos"] / sum(counts.values()) - share) < 0.05, (part, counts, share)

    ev = json.loads((rd / "evaluate/eval.json").read_text())
    assert ev["reference"] == "probe" and ev["metric"] == "accuracy"
    assert ev["delta"]["reference"] == pytest.approx(info["mean"])
    assert ev["delta"]["reference"] >= 0.95, ev["delta"]  # the probe reads the give-away word
    assert ev["verdict"] != "improved"

    dec = res.decision
    assert dec["ship"] is False and dec["headline"] == "not proven: do not ship"
    # a constant answer the tuned model does not beat comes first; the strong probe next
    codes = [c["code"] for c in dec["causes"]]
    constant_unbeaten = ev["references"]["majority"]["verdict"] != "improved"
    assert codes[0] == ("reference_constant" if constant_unbeaten else "reference_strong"), dec["causes"]
    (strong,) = [c for c in dec["causes"] if c["code"] == "reference_strong"]
    assert "probe" in strong["evidence"]
    assert not (rd / "model").exists()
    assert json.loads((rd / "decision.json").read_text()) == dec
