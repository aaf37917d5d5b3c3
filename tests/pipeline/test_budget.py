"""The pipeline's budget: the final training counted over the data as given, the search a share of it."""

from __future__ import annotations

import json
import math

from tuneproof.config import load_config
from tuneproof.pipeline import run
from tuneproof.pipeline._budget import MIN_SWEEP_STEPS, curation_factor, final_steps, search_steps


def _cfg(**pipeline):
    return load_config({"name": "b", "task": "sft", "data": {"path": "x.jsonl"},
                        "train": {"batch_size": 8, "epochs": 2}, "pipeline": pipeline})  # fmt: skip


def test_final_steps_count_epochs_over_the_data_as_given():
    cfg = _cfg()
    assert final_steps(cfg, 80) == 20  # 10 batches x 2 epochs
    assert final_steps(cfg, 80, factor=1.5) == 30  # curation removed a third: the updates stay
    assert final_steps(load_config({**cfg.model_dump(mode="json"), "train": {"max_steps": 7}}), 80, 1.5) == 7


def test_curation_factor_reads_the_manifest(tmp_path):
    assert curation_factor(None) == 1.0 and curation_factor(tmp_path) == 1.0
    (tmp_path / "manifest.json").write_text(json.dumps({"counts": {"kept": 60, "removed": 30, "unreadable": 2}}))
    assert curation_factor(tmp_path) == 1.5


def test_the_search_costs_its_share_of_the_final_training_unless_steps_are_given():
    cfg = _cfg()  # search_budget 0.5: 50 of 100 final steps, 25 for the sweep, 25 for the trials
    assert search_steps(cfg, 200, n_lrs=5, n_trials=2) == (10, 25)
    # a swept rate needs a few steps to say anything: the floor holds past the budget
    assert search_steps(cfg, 60, n_lrs=5, n_trials=2) == (MIN_SWEEP_STEPS, 7)
    assert search_steps(cfg, 4, n_lrs=7, n_trials=12) == (MIN_SWEEP_STEPS, 1)  # a trial: never below one step
    assert search_steps(_cfg(sweep_steps=9, tune_steps=3), 100, 5, 2) == (9, 3)
    assert search_steps(_cfg(search_budget=None), 100, 5, 2) == (None, None)


def test_a_curated_run_keeps_the_planned_updates_and_spends_its_budget_on_the_search(pipeline_config, tmp_path):
    rows = [{"prompt": f"question number {i} about item {i * 7}", "completion": f"answer {i}"} for i in range(40)]
    rows += rows[:20]  # 20 exact duplicates: curation removes a third of the records
    data = tmp_path / "dups.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = pipeline_config(data={"path": str(data), "val_fraction": 0.2, "test_fraction": 0.2},
                          train={"batch_size": 4, "epochs": 1, "max_steps": None, "eval_steps": None, "bf16": False},
                          search={"n_trials": 2, "pruner": "none", "space": {"batch_size": {"choices": [4]}}},
                          pipeline={"sweep_lrs": [1e-4, 1e-3, 1e-2], "sweep_steps": None, "tune_steps": None})  # fmt: skip
    rd = run(cfg).run_dir
    counts = json.loads((rd / "curate/manifest.json").read_text())["counts"]
    assert counts["removed"] >= 20
    n_train = json.loads((rd / "split/split.json").read_text())["counts"]["train"]
    planned = math.ceil(n_train * (counts["kept"] + counts["removed"]) / counts["kept"] / 4)
    assert planned > math.ceil(n_train / 4)  # the as-given budget is larger than one epoch of what was kept
    assert json.loads((rd / "train/train.json").read_text())["global_step"] == planned
    half = 0.5 * planned / 2
    sweep = json.loads((rd / "lr_sweep/lr_sweep.json").read_text())["points"]
    assert {p["steps"] for p in sweep} == {max(MIN_SWEEP_STEPS, math.floor(half / 3))}
    trials = json.loads((rd / "tune/trials.json").read_text())["trials"]
    assert {t["user_attrs"]["global_step"] for t in trials} == {max(1, math.floor(half / 2))}
