"""One process per run directory: a second run refuses, naming the first; a dead holder's lock is cleared."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tuneproof import _lock
from tuneproof._lock import LOCK_NAME, RunDirLocked, run_dir_lock
from tuneproof.cli import app

runner = CliRunner()
SRC = str(Path(_lock.__file__).resolve().parents[1])

# A real process that takes the lock, says so, and waits to be killed.
HOLDER = """
import sys, time
from tuneproof._lock import run_dir_lock
with run_dir_lock(sys.argv[1], "tuneproof run"):
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture
def holder(tmp_path):
    """``holder(run_dir)``: a live process holding the lock on ``run_dir``; killed at the end."""
    procs = []

    def start(run_dir: Path) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
        env.pop("RANK", None)
        p = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True, env=env)
        procs.append(p)
        assert p.stdout.readline().strip() == "held"
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait()


def test_a_second_process_is_refused_with_the_holders_pid(tmp_path, holder):
    p = holder(tmp_path / "run")
    with pytest.raises(RunDirLocked) as err:
        with run_dir_lock(tmp_path / "run", "tuneproof train"):
            pass
    msg = str(err.value)
    assert f"pid {p.pid}" in msg and "tuneproof run" in msg and f"kill {p.pid}" in msg and "another name" in msg
    assert err.value.holder["pid"] == p.pid


def test_a_lock_left_by_a_killed_process_is_cleared(tmp_path, holder):
    p = holder(tmp_path / "run")
    p.send_signal(signal.SIGKILL)
    p.wait()
    left = json.loads((tmp_path / "run" / LOCK_NAME).read_text())
    assert left["pid"] == p.pid  # SIGKILL left the file filled in
    with run_dir_lock(tmp_path / "run", "tuneproof run") as state:
        assert state.cleared["pid"] == p.pid
        assert json.loads((tmp_path / "run" / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert (tmp_path / "run" / LOCK_NAME).read_text() == ""  # released: emptied


def test_the_lock_is_reentrant_in_one_process_and_released_after(tmp_path):
    with run_dir_lock(tmp_path / "run", "tuneproof run"):
        with run_dir_lock(tmp_path / "run", "tuneproof train") as inner:
            assert inner.cleared is None
    with run_dir_lock(tmp_path / "run", "tuneproof run") as again:  # released, and nothing stale
        assert again.cleared is None


def test_without_flock_the_pid_decides(tmp_path, holder, monkeypatch):
    # Some network file systems have no flock: the pid in the file says whether the holder lives.
    monkeypatch.setattr(_lock, "_flock", lambda fd: None)
    p = holder(tmp_path / "run")
    with pytest.raises(RunDirLocked, match=f"pid {p.pid}"):
        with run_dir_lock(tmp_path / "run", "tuneproof run"):
            pass
    p.kill()
    p.wait()
    with run_dir_lock(tmp_path / "run", "tuneproof run") as state:
        assert state.cleared["pid"] == p.pid
    # a holder on another host cannot be checked: refused, with how to clear it by hand
    info = {"pid": 1, "host": "elsewhere", "command": "tuneproof run", "started": "x", "argv": "x"}
    (tmp_path / "run" / LOCK_NAME).write_text(json.dumps(info))
    with pytest.raises(RunDirLocked, match="if that process has ended, delete"):
        with run_dir_lock(tmp_path / "run", "tuneproof run"):
            pass


def _config(tmp_path: Path) -> Path:
    rows = [{"prompt": f"What is {i} plus {i}?", "completion": str(2 * i)} for i in range(30)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"name": "r", "task": "sft", "data": {"path": "d.jsonl"}, "tracking": {"runs_dir": "runs"}}))
    return path


@pytest.mark.parametrize("command", [["run"], ["train"], ["tune"]])
def test_run_train_and_tune_refuse_a_held_run_directory(tmp_path, holder, command):
    config = _config(tmp_path)
    p = holder(tmp_path / "runs" / "r")
    t0 = time.perf_counter()
    result = runner.invoke(app, [*command, str(config)])
    out = " ".join(result.output.split())
    assert result.exit_code == 1, out
    assert f"is in use by another tuneproof process: pid {p.pid}" in out and "Traceback" not in out
    assert time.perf_counter() - t0 < 30  # refused before any model loads
