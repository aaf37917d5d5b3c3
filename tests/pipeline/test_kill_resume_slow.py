"""SIGKILL `tuneproof run` at each risky point, rerun, and get the uninterrupted run's decision and metrics.

Slow: real processes, each importing torch and training the tiny Llama. One chain of runs:
each is killed at the next point (kill_harness.py), the one after resumes it, and the last
finishes; then the result is compared with a run that was never interrupted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

HARNESS = Path(__file__).with_name("kill_harness.py")
SRC = Path(__file__).resolve().parents[2] / "src"
# (stage, how, file, nth): in pipeline order, so that each rerun resumes and meets the next one.
KILL_POINTS = [
    ("audit", "write", "audit.json", 1),  # during the audit: findings written, audit.json not yet
    ("split", "after", None, None),  # a stage's outputs written, the ledger not yet told
    ("lr_sweep", "write", "train.json", 2),  # during the lr sweep, after its second rate's training
    ("tune", "write", "train.json", 1),  # during a search trial, its training done, not reported
    ("train", "checkpoint", None, None),  # during the final training, after its first checkpoint
    ("evaluate", "write", "eval.json", 1),  # during the evaluation: records scored, eval.json not yet
]
# Optuna fails a trial whose heartbeat stopped this long ago, then retries its parameters.
STALE_AFTER_S = 31


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1"}  # fmt: skip


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=1800)


def _ledger(run_dir: Path) -> dict[str, dict]:
    return {s["name"]: s for s in json.loads((run_dir / "pipeline.json").read_text())["stages"]}


def _outcome(run_dir: Path) -> dict:
    dec = json.loads((run_dir / "decision.json").read_text())
    ev = json.loads((run_dir / "evaluate" / "eval.json").read_text())
    keep = ("metric", "verdict", "n_records", "reference", "metrics", "delta")  # not the paths, which name the run
    best = run_dir / "tune" / "best.yaml"
    params = best.read_text().splitlines()[1] if best.exists() else None  # "# params: {...}" of the best trial
    return {"decision": {k: dec.get(k) for k in ("headline", "verdict", "ship")}, "eval": {k: ev.get(k) for k in keep},
            "best_params": params, "records": (run_dir / "evaluate" / "records.jsonl").read_text()}


def test_every_kill_point_resumes_to_the_uninterrupted_result(pipeline_config, tmp_path):
    cfg = pipeline_config()
    cfg["pipeline"]["stages"] = {"report": False}  # the report reads what the stages wrote; not a kill point here
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg))
    run_dir = Path(cfg["tracking"]["runs_dir"]) / cfg["name"]

    done_before: list[str] = []
    order = ["audit", "curate", "split", "baseline", "preflight", "lr_sweep", "curation_ab", "tune", "train", "evaluate"]
    for stage, how, file, nth in KILL_POINTS:
        args = [str(HARNESS), str(config), stage, how] + ([file, str(nth)] if how == "write" else [])
        p = _run(args, tmp_path)
        assert p.returncode == -9, f"not killed at {stage}/{how}: rc {p.returncode}\n{p.stderr[-3000:]}"
        ledger = _ledger(run_dir)
        # the killed stage is never taken as done, and what finished before it was not redone
        assert ledger[stage]["status"] == "failed" and "interrupted" in ledger[stage]["note"], ledger[stage]
        for name in done_before:
            assert ledger[name]["status"] == "skipped_unchanged", (stage, name, ledger[name])
        if stage == "audit":  # audit.json was never put in place; its finished temporary file was left
            assert not (run_dir / "audit" / "audit.json").exists() and list((run_dir / "audit").glob(".audit.json.*.tmp"))
        # the next run redoes the killed stage (the ledger never recorded it) and skips those before it
        done_before = order[: order.index(stage)]
        if stage == "tune":
            time.sleep(STALE_AFTER_S)  # the killed trial's heartbeat goes stale: it is failed and retried
    final = _run(["-m", "tuneproof.cli", "run", str(config)], tmp_path)
    assert final.returncode == 0, final.stderr[-3000:]
    ledger = _ledger(run_dir)
    assert all(ledger[n]["status"] == "skipped_unchanged" for n in order[:-1]), {n: ledger[n]["status"] for n in order}
    assert ledger["evaluate"]["status"] == "done"
    assert not list(run_dir.glob("*/.*.tmp"))  # the temporaries of the killed writes were cleared on the rerun
    resumed = _outcome(run_dir)

    clean_cfg = {**cfg, "name": "clean"}
    clean = tmp_path / "clean.yaml"
    clean.write_text(yaml.safe_dump(clean_cfg))
    p = _run(["-m", "tuneproof.cli", "run", str(clean)], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    uninterrupted = _outcome(Path(cfg["tracking"]["runs_dir"]) / "clean")
    assert resumed == uninterrupted
