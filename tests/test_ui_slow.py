"""`tuneproof ui` serves the real MLflow UI on a run's SQLite store, on 127.0.0.1 only (slow: starts a server)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_serves_the_tracking_store(tmp_path):
    import mlflow

    runs = tmp_path / "runs"
    runs.mkdir()
    mlflow.set_tracking_uri(f"sqlite:///{runs / 'mlflow.db'}")
    mlflow.set_experiment("tuneproof-ui-test")
    with mlflow.start_run():
        mlflow.log_metric("val_loss", 1.5)
    mlflow.set_tracking_uri(None)

    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuneproof.cli", "ui", str(runs), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so the server's workers stop with it
    )
    try:
        url = f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/search?max_results=10"
        deadline, body = time.monotonic() + 90, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    body = json.loads(resp.read())
                    break
            except OSError:
                time.sleep(0.5)
        assert body is not None, f"the UI did not answer; exit code {proc.poll()}"
        assert "tuneproof-ui-test" in [e["name"] for e in body["experiments"]]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
