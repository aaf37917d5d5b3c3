"""The decision names tuneproof's own stages as causes, only when the run's files support them."""

from __future__ import annotations

import json

import pytest

from tuneproof.config import load_config
from tuneproof.pipeline import decide


def _cfg(tmp_path, **pipeline):
    return load_config({"name": "d", "task": "classification", "data": {"path": "x.jsonl"},
                        "tracking": {"runs_dir": str(tmp_path)}, "pipeline": pipeline})  # fmt: skip


def _write(run_dir, rel, obj):
    path = run_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _eval(run_dir, verdict="regressed", ref=0.72, tuned=0.42, ci=(-0.45, -0.15), n=36):
    _write(run_dir, "evaluate/eval.json", {
        "metric": "accuracy", "reference": "probe", "n_records": n, "verdict": verdict, "verdict_reason": "r",
        "delta": {"reference": ref, "tuned": tuned, "value": tuned - ref, "ci_low": ci[0], "ci_high": ci[1],
                  "confidence": 0.95, "higher_is_better": True}})  # fmt: skip


def _curated(run_dir, input_rows, kept, by_check):
    _write(run_dir, "curate/manifest.json", {"counts": {"input_rows": input_rows, "kept": kept,
                                                        "removed": input_rows - kept, "unreadable": 0,
                                                        "removed_by_check": by_check}})  # fmt: skip


def _preflight(run_dir, n_train, risks=()):
    _write(run_dir, "preflight/preflight.json", {"counts": {"train": n_train}, "risks": list(risks),
                                                 "min_detectable_effect": {"value": 0.3, "n_test": 36}})  # fmt: skip


TOO_FEW = {"code": "too_few_examples", "level": "high", "evidence": "93 training records after curation and split",
           "fix": "add data"}  # fmt: skip


def _codes(cfg):
    return [c["code"] for c in decide(cfg)["causes"]]


def test_curation_that_caused_the_shortage_is_named_before_the_shortage(tmp_path):
    cfg = _cfg(tmp_path)
    rd = cfg.run_dir
    _eval(rd)
    _curated(rd, 800, 154, {"off_domain": 646})
    _preflight(rd, 93, [TOO_FEW])
    causes = decide(cfg)["causes"]
    codes = [c["code"] for c in causes]
    assert codes == ["regressed", "curation", "data_problem"]  # curation before the shortage it caused
    assert "too_few_examples" in causes[2]["evidence"]
    (cur,) = [c for c in causes if c["code"] == "curation"]
    assert cur["evidence"].startswith("curation removed 81% of the rows (off_domain 646 of 800)")
    assert "would have given about 483" in cur["evidence"]  # 93 train records of 154 kept, scaled to 800 rows
    assert "domain description" in cur["next"] and "domain references" in cur["next"]


@pytest.mark.parametrize(
    ("input_rows", "kept", "by_check", "n_train", "verdict"),
    [
        (100, 60, {"off_domain": 40}, 40, "no_change"),  # 100 rows would give about 66 training records: short anyway
        (800, 200, {"exact_duplicate": 600}, 93, "regressed"),  # copies of kept rows: nothing of the data was lost
        (800, 500, {"low_quality": 300}, 350, "no_change"),  # large removal, but no shortage and no regression
        (800, 600, {"low_quality": 200}, 420, "regressed"),  # a regression after a 25% removal: not a large share
    ],
)
def test_curation_is_not_named_without_evidence(tmp_path, input_rows, kept, by_check, n_train, verdict):
    cfg = _cfg(tmp_path)
    rd = cfg.run_dir
    _eval(rd, verdict, ref=0.7, tuned=0.6 if verdict == "regressed" else 0.7)
    _curated(rd, input_rows, kept, by_check)
    _preflight(rd, n_train, [TOO_FEW] if n_train < 200 else [])
    assert "curation" not in _codes(cfg)


def test_a_regression_after_a_large_removal_names_curation(tmp_path):
    cfg = _cfg(tmp_path)
    rd = cfg.run_dir
    _eval(rd, "regressed", ref=0.7, tuned=0.6, ci=(-0.15, -0.05), n=300)
    _curated(rd, 1000, 600, {"low_quality": 350, "exact_duplicate": 50})
    _preflight(rd, 420)
    causes = decide(cfg)["causes"]
    assert [c["code"] for c in causes][:2] == ["regressed", "curation"]
    assert "low_quality 350 of 1000" in causes[1]["evidence"] and "regressed: delta -0.1" in causes[1]["evidence"]
    assert "audit.decisions.low_quality: flag" in causes[1]["next"]


def test_curation_switched_off_is_not_a_cause(tmp_path):
    cfg = _cfg(tmp_path, stages={"curate": False})
    rd = cfg.run_dir
    _eval(rd)
    _curated(rd, 800, 154, {"off_domain": 646})  # from an earlier run: this run trained on the raw data
    _preflight(rd, 93, [TOO_FEW])
    assert "curation" not in _codes(cfg)


def _sweep(run_dir, edge, best, lrs=(1e-4, 1e-3, 1e-2)):
    _write(run_dir, "lr_sweep/lr_sweep.json", {"edge": edge, "best_lr": best,
                                               "points": [{"lr": x, "status": "ok"} for x in lrs]})  # fmt: skip


@pytest.mark.parametrize(("edge", "best", "used", "listed"), [
    ("high", 1e-2, 1e-2, True),   # trained at the largest rate swept
    ("high", 1e-2, 2e-2, True),   # beyond it: the optimum may lie further still
    ("high", 1e-2, 1e-3, False),  # the training moved back inside the sweep
    ("low", 1e-4, 1e-4, True),
    ("low", 1e-4, 1e-3, False),
    (None, 1e-3, 1e-3, False),    # the best rate was inside the sweep
])  # fmt: skip
def test_a_rate_at_the_edge_of_the_sweep_is_named_only_when_the_training_used_it(tmp_path, edge, best, used, listed):
    cfg = _cfg(tmp_path)
    rd = cfg.run_dir
    _eval(rd, "no_change", ref=0.70, tuned=0.71, ci=(-0.01, 0.03), n=400)
    _sweep(rd, edge, best)
    _write(rd, "train/train.json", {"best_step": 100, "global_step": 100, "stopped_early": False, "guard": {},
                                    "data": {"lr": used}})  # fmt: skip
    causes = decide(cfg)["causes"]
    codes = [c["code"] for c in causes]
    assert ("lr_at_sweep_edge" in codes) is listed
    if listed:
        assert codes.index("lr_at_sweep_edge") < codes.index("budget")  # the rate before "train longer"
        (c,) = [c for c in causes if c["code"] == "lr_at_sweep_edge"]
        assert ("largest swept" if edge == "high" else "smallest swept") in c["evidence"] and f"used {used:g}" in c["evidence"]
        assert "pipeline.sweep_lrs" in c["next"]


def test_the_pipelines_own_rate_choice_is_the_rate_used(tmp_path):
    cfg = _cfg(tmp_path)
    rd = cfg.run_dir
    _eval(rd, "no_change", ref=0.70, tuned=0.71, ci=(-0.01, 0.03), n=400)
    _sweep(rd, "high", 1e-2)
    _write(rd, "train/train.json", {"best_step": 50, "global_step": 100, "guard": {}, "data": {"lr": 1e-3}})
    _write(rd, "train/lr_choice.json", {"lr": 1e-2, "why": "the lr sweep's rate for this training (no search trials)"})
    assert "lr_at_sweep_edge" in _codes(cfg)
