"""`tuneproof run` on a disk that fills up: a clear error, nothing half-written taken as done, and a resume.

Slow: a real process on a real small tmpfs (mounting needs root, as CI runs the tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

SRC = Path(__file__).resolve().parents[2] / "src"


def _run(config: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "tuneproof.cli", "run", str(config)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1800)  # fmt: skip


@pytest.fixture
def tmpfs(tmp_path):
    where = tmp_path / "disk"
    where.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1200k", "tmpfs", str(where)]).returncode:
        pytest.skip("mounting a tmpfs needs root; run the suite as root (as CI does) to test a full disk")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_run_that_fills_the_disk_stops_clearly_and_resumes_once_there_is_space(pipeline_config, tmp_path, tmpfs):
    cfg = pipeline_config(tracking={"runs_dir": str(tmpfs)}, pipeline={"stages": {"report": False}})
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg))
    full = _run(config, tmp_path)
    err = " ".join(full.stderr.split())
    assert full.returncode == 1, full.stderr[-3000:]
    assert "no space left writing" in err, full.stderr[-3000:]
    final = full.stderr[full.stderr.rindex("error:"):]  # our message, printed last; libraries may log their own before
    assert "Traceback" not in final, final
    assert "free there" in err or "free space could not be read" in err
    run_dir = tmpfs / cfg["name"]
    ledger_path = run_dir / "pipeline.json"
    before: dict[str, str] = {}
    if ledger_path.exists():  # the ledger is whole (atomic) or the old one: never half a file
        stages = json.loads(ledger_path.read_text())["stages"]
        before = {s["name"]: s["status"] for s in stages}
        for s in stages:  # a stage recorded as done has every output in place
            if s["status"] == "done":
                assert all(Path(p).exists() for p in s["outputs"]), s

    subprocess.run(["mount", "-o", "remount,size=300m", str(tmpfs)], check=True)
    again = _run(config, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    after = {s["name"]: s["status"] for s in json.loads(ledger_path.read_text())["stages"]}
    for name, status in before.items():  # what finished before the disk filled is not redone
        if status == "done":
            assert after[name] == "skipped_unchanged", (name, before, after)
    assert after["evaluate"] == "done" and (run_dir / "decision.json").exists()
