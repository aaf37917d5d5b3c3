"""The curation A/B: the keep/revert rule, which removed rows may train in the raw arm, and a run that writes it."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from tuneproof.config import load_config
from tuneproof.pipeline import run
from tuneproof.pipeline._ab import ab_decision, curation_ab, raw_training_rows, reverted_train_path

WORDS = "the capital of france is paris rome madrid water boils at one hundred degrees sun rises in east".split()


def _paired(n: int, shift: float, spread: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Raw-arm losses, and curated-arm losses ``shift`` higher on average with per-record noise ``spread``."""
    rng = np.random.default_rng(seed)
    raw = rng.uniform(1.0, 3.0, n)  # records differ in difficulty; the pairing cancels it
    return raw + shift + rng.normal(0, spread, n), raw


def test_curated_worse_within_noise_is_kept():
    curated, raw = _paired(60, shift=0.05, spread=0.8)
    out = ab_decision(curated, raw, a="curated", b="raw")
    assert out["decision"] == "keep"
    assert out["ci"][0] <= 0 <= out["ci"][1] and out["difference"] > 0
    assert out["noise"] == pytest.approx((out["ci"][1] - out["ci"][0]) / 2)
    assert "within noise" in out["why"] and "curated is kept unless it is worse beyond noise" in out["why"]


def test_curated_worse_beyond_noise_is_reverted():
    curated, raw = _paired(60, shift=0.05, spread=0.02)  # the same mean shift, now far above the noise
    out = ab_decision(curated, raw, a="curated", b="raw")
    assert out["decision"] == "revert" and out["ci"][0] > 0
    assert out["val_loss"]["curated"] == pytest.approx(curated.mean()) and out["val_loss"]["raw"] == pytest.approx(raw.mean())
    assert out["difference"] == pytest.approx(curated.mean() - raw.mean())
    assert "beyond noise" in out["why"] and "so raw is used" in out["why"]


def test_curated_better_is_kept_and_says_so():
    curated, raw = _paired(60, shift=-0.3, spread=0.05)
    out = ab_decision(curated, raw, a="curated", b="raw")
    assert out["decision"] == "keep" and out["ci"][1] < 0 and "better beyond noise" in out["why"]


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _qa(i: int, rng: random.Random) -> dict:
    return {"prompt": f"q{i} " + " ".join(rng.choice(WORDS) for _ in range(9)), "completion": " ".join(rng.choice(WORDS) for _ in range(3))}


def test_raw_arm_never_trains_on_copies_of_validation_or_test_records_or_leakage(tmp_path):
    rng = random.Random(1)
    train, val, test = [_qa(i, rng) for i in range(6)], [_qa(10 + i, rng) for i in range(3)], [_qa(20 + i, rng) for i in range(3)]
    split = tmp_path / "split"
    for name, rows in (("train", train), ("val", val), ("test", test)):
        _write(split / f"{name}.jsonl", [{"id": f"{name}:{k}", **r} for k, r in enumerate(rows)])
    # The data as given: the kept records, then what curation removed. duplicate_of names the original ids.
    given = train + val + test
    data = _write(tmp_path / "data.jsonl", given)
    near_val = {"prompt": val[1]["prompt"] + " extra", "completion": val[1]["completion"]}
    off_domain_ok = {"prompt": "completely different words about football scores today", "completion": "three nil"}
    dup_of_train = dict(train[0])
    removed = [
        ("data.jsonl:7", dict(val[0]), [{"check": "exact_duplicate", "code": "identical text", "reason": "r", "duplicate_of": "data.jsonl:7"}]),
        ("data.jsonl:30", {"prompt": test[0]["prompt"].upper() + "  ", "completion": test[0]["completion"]},
         [{"check": "off_domain", "code": "low similarity", "reason": "r"}]),
        ("data.jsonl:31", near_val, [{"check": "low_quality", "code": "x", "reason": "r"}]),
        ("data.jsonl:32", {"prompt": "leaky " + test[2]["prompt"], "completion": "x y"},
         [{"check": "leakage", "code": "shared n-gram", "reason": "r", "eval_id": "test:2"}]),
        ("data.jsonl:33", dup_of_train, [{"check": "exact_duplicate", "code": "identical text", "reason": "r", "duplicate_of": "data.jsonl:1"}]),
        ("data.jsonl:34", off_domain_ok, [{"check": "off_domain", "code": "low similarity", "reason": "r"}]),
    ]
    curate = tmp_path / "curate"
    _write(curate / "removed.jsonl", [{"id": i, "reasons": why, "record": rec} for i, rec, why in removed])
    cfg = load_config({"name": "x", "task": "sft", "data": {"path": str(data)}, "tracking": {"runs_dir": str(tmp_path / "runs")}})

    rows, excluded = raw_training_rows(cfg, split, curate, tmp_path / "work")
    assert [r["id"] for r in rows] == ["data.jsonl:33", "data.jsonl:34"]
    assert rows[1]["prompt"] == off_domain_ok["prompt"] and rows[1]["completion"] == off_domain_ok["completion"]
    assert excluded["counts"] == {
        "duplicate of a validation/test record (duplicate_of)": 1,
        "same or near-same text as a validation/test record": 2,
        "leakage: overlaps the evaluation data": 1,
    }
    assert excluded["examples"]["leakage: overlaps the evaluation data"] == ["data.jsonl:32"]


def test_nothing_removed_skips_cleanly_and_a_stale_revert_never_changes_the_data(tmp_path):
    cfg = load_config({"name": "x", "task": "sft", "data": {"path": str(tmp_path / "d.jsonl")}})
    curate, out = tmp_path / "curate", tmp_path / "ab"
    _write(curate / "manifest.json", []).write_text(json.dumps({"counts": {"kept": 10, "removed": 0}}))
    res = curation_ab(cfg, tmp_path / "split", curate, out, steps=2, lr=1e-3, lr_source="test")
    assert res["skipped"] == "curation removed nothing" and res["decision"] == "keep"
    assert json.loads((out / "ab.json").read_text())["skipped"] == "curation removed nothing"
    assert reverted_train_path(cfg, out) is None
    # a revert recorded by the A/B sends tune and train to the raw data, unless the A/B or curation is off now
    (out / "ab.json").write_text(json.dumps({"decision": "revert", "skipped": None}))
    (out / "raw_train.jsonl").write_text("{}\n")
    assert reverted_train_path(cfg, out) == out / "raw_train.jsonl"
    off = load_config({**cfg.model_dump(mode="json"), "pipeline": {"stages": {"curation_ab": False}}})
    assert reverted_train_path(off, out) is None


def test_after_a_revert_the_search_and_the_final_training_read_the_raw_data(tmp_path):
    from tuneproof.pipeline._run import Ctx, _train_file

    cfg = load_config({"name": "x", "task": "sft", "data": {"path": str(tmp_path / "d.jsonl"), "fields": {"prompt": "q"}},
                       "tracking": {"runs_dir": str(tmp_path / "runs")}})  # fmt: skip
    ctx = Ctx(cfg, console=None)
    assert _train_file(ctx) is None and ctx.staged(_train_file(ctx)).data.path == str(ctx.dir("split") / "train.jsonl")
    ab = ctx.dir("curation_ab")
    _write(ab / "raw_train.jsonl", [{"prompt": "a", "completion": "b"}])
    (ab / "ab.json").write_text(json.dumps({"decision": "revert", "skipped": None}))
    staged = ctx.staged(_train_file(ctx))
    assert staged.data.path == str(ab / "raw_train.jsonl") and staged.data.eval_path == str(ctx.dir("split") / "val.jsonl")
    assert staged.data.fields == {}  # the raw arm's file is in canonical fields, as the split writes them


def test_a_run_whose_curation_removed_rows_writes_the_ab_and_reports_it(pipeline_config, tmp_path):
    rng = random.Random(3)
    rows = [_qa(i, rng) for i in range(50)]
    rows += [dict(r) for r in rows[:12]]  # duplicates: some of their originals land in train, some in val/test
    data = _write(tmp_path / "ab_data.jsonl", rows)
    cfg = pipeline_config(data={"path": str(data), "val_fraction": 0.2, "test_fraction": 0.2},
                          pipeline={"stages": {"tune": False}, "sweep_lrs": [1e-4, 1e-3, 1e-2], "sweep_steps": 2})  # fmt: skip
    res = run(cfg)
    st = {s["name"]: s for s in res.stages}
    assert st["curation_ab"]["status"] == "done"
    ab = json.loads((res.run_dir / "curation_ab/ab.json").read_text())
    assert ab["skipped"] is None and ab["decision"] in ("keep", "revert")
    sweep = json.loads((res.run_dir / "lr_sweep/lr_sweep.json").read_text())
    assert ab["steps"] == sweep["steps"] == 2 and ab["lr"] == sweep["best_lr"]
    arms = ab["arms"]
    # the raw arm has the curated rows plus the removed ones that may train; copies of val/test rows never
    n_excluded = sum(ab["excluded"]["counts"].values())
    assert ab["removed"] == 12 and ab["added_to_raw"] + n_excluded == 12 and ab["added_to_raw"] > 0 and n_excluded > 0
    assert arms["raw"]["train_records"] == arms["curated"]["train_records"] + ab["added_to_raw"]
    assert arms["curated"]["steps"] == arms["raw"]["steps"] == 2
    val_ids = {json.loads(x)["id"] for x in (res.run_dir / "split/val.jsonl").read_text().splitlines()}
    losses = [json.loads(x) for x in (res.run_dir / "curation_ab/val_losses.jsonl").read_text().splitlines()]
    assert {x["id"] for x in losses} == val_ids and ab["val_records"] == len(val_ids)
    assert ab["val_loss"]["curated"] == pytest.approx(np.mean([x["curated"] for x in losses]))
    assert ab["difference"] == pytest.approx(ab["val_loss"]["curated"] - ab["val_loss"]["raw"])
    assert ab["ci"][0] <= ab["difference"] <= ab["ci"][1] and ab["noise"] > 0
    page = res.report.read_text()
    section = page.split('<section id="curation-ab"')[1].split("</section>")[0]
    assert "Difference (curated - raw)" in section and "validation loss" in section and "Decision:" in section
    facts = json.loads((res.run_dir / "report.json").read_text())["sections"]["curation-ab"]
    assert facts["status"] == "ok" and facts["decision"] == ab["decision"]


def test_classification_arms_are_scored_by_cross_entropy_per_record(tmp_path, tiny_bert_dir):
    from tuneproof.pipeline._ab import paired_ab

    rng = random.Random(0)

    def rows(n):
        return [{"text": " ".join(rng.choice(WORDS) for _ in range(4)) + (" wonderful" if i % 2 else " dull"),
                 "label": "pos" if i % 2 else "neg"} for i in range(n)]  # fmt: skip

    a, b, val = _write(tmp_path / "a.jsonl", rows(16)), _write(tmp_path / "b.jsonl", rows(24)), _write(tmp_path / "val.jsonl", rows(10))
    cfg = load_config({"name": "c", "task": "classification", "data": {"path": str(a)},
                       "model": {"name": str(tiny_bert_dir), "method": "full", "max_length": 32},
                       "train": {"batch_size": 4, "bf16": False}, "tracking": {"runs_dir": str(tmp_path / "runs")}})  # fmt: skip
    out = paired_ab(cfg, {"curated": a, "raw": b}, val, tmp_path / "ab", steps=2, lr=1e-3)
    assert out["arms"]["curated"]["train_records"] == 16 and out["arms"]["raw"]["train_records"] == 24
    for arm in ("curated", "raw"):
        # the mean of our per-record cross-entropies is the engine's own validation loss of the same model
        assert out["arms"][arm]["val_loss"] == pytest.approx(out["arms"][arm]["engine_val_loss"], rel=1e-3)
    assert out["decision"] in ("keep", "revert") and out["n_records"] == 10
    assert not (tmp_path / "ab/curated/model").exists()  # scored, then deleted: only train.json stays


def test_a_revert_is_acted_on_only_when_a_second_seed_replicates_it():
    from tuneproof.pipeline._ab import replicated

    worse = {"decision": "revert", "why": "curated worse beyond noise", "difference": 0.08}
    assert replicated(worse, {"decision": "revert", "why": "again worse"})["decision"] == "revert"
    kept = replicated(worse, {"decision": "keep", "why": "within noise", "difference": 0.01})
    assert kept["decision"] == "keep" and "did not replicate" in kept["why"]
    assert kept["replication"]["difference"] == 0.01 and kept["difference"] == 0.08  # the first pair's numbers stay
