"""`tuneproof demo` end to end on the real data and SmolLM2, with a reduced budget (slow: network, real model)."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

pytestmark = pytest.mark.slow


def test_demo_runs_the_whole_pipeline_and_prints_a_verdict(tmp_path):
    from tuneproof.demo import run_demo

    console = Console(record=True, width=200)
    small = {"train": {"max_steps": 4, "eval_steps": 2}, "eval": {"limit": 20, "max_new_tokens": 8, "forgetting_text": None},
             "pipeline": {"sweep_steps": 2, "tune_trials": 1, "tune_steps": 2}}  # fmt: skip
    result = run_demo(tmp_path, console, overrides=small)
    rd = result.run_dir
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text())
    held_out = manifest["domain_references"]["nq_open_questions"] + manifest["test_set"]["nq_open_questions"]
    assert manifest["counts"]["nq_open"] + held_out == 3569 and manifest["test_set"]["nq_open_questions"] == 300
    split = json.loads((rd / "split/split.json").read_text())
    assert split["test_source"].endswith("test_questions.jsonl")
    removed = json.loads((rd / "curate/manifest.json").read_text())["counts"]["removed_by_check"]
    assert removed.get("exact_duplicate", 0) >= 900  # tech_support's 10 pairs x 105 copies, and more
    ev = json.loads((rd / "evaluate/eval.json").read_text())
    assert ev["metric"] == "exact_match" and ev["n_records"] == 20 and "token_f1" in ev["metrics"]["base"]
    dec = json.loads((rd / "decision.json").read_text())
    text = console.export_text()
    assert dec["headline"] in text and "report:" in text
    assert dec["ship"] == (ev["verdict"] == "improved")
