"""Several workers on one PostgreSQL study; a worker killed mid-trial has its trial retried.

Needs ``TUNEPROOF_TEST_POSTGRES_URL`` (``.ci/run`` starts a local server and sets it via
``.ci/postgres.sh``). Skipped without it locally; a failure, not a skip, when ``CI`` is set.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import optuna
import pytest
import sqlalchemy
import yaml

import tuneproof

pytestmark = pytest.mark.slow

WORKER = """
import sys
from tuneproof.search import tune
tune(sys.argv[1], storage=sys.argv[2], study_name=sys.argv[3], n_trials=int(sys.argv[4]),
     heartbeat_interval=1, grace_period=3)
"""


@pytest.fixture
def pg_url():
    url = os.environ.get("TUNEPROOF_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("CI is set but TUNEPROOF_TEST_POSTGRES_URL is not: .ci/run must start PostgreSQL (.ci/postgres.sh)")
        pytest.skip("TUNEPROOF_TEST_POSTGRES_URL unset (run `eval \"$(.ci/postgres.sh)\"` to enable)")
    return url


@pytest.fixture
def workers(tmp_path, search_config):
    """Start tune workers as subprocesses on one config; kills any still running at the end."""
    cfg = search_config(search={"pruner": "none"})
    cfg["train"]["max_steps"] = 8
    path = tmp_path / "tuneproof.yaml"
    path.write_text(yaml.safe_dump(cfg))
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(Path(tuneproof.__file__).parents[1]), "HF_HUB_OFFLINE": "1"}
    procs: list[subprocess.Popen] = []

    def start(url: str, study: str, n_trials: int, name: str) -> subprocess.Popen:
        log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen([sys.executable, str(script), str(path), url, study, str(n_trials)],
                                stdout=log, stderr=subprocess.STDOUT, env=env)  # fmt: skip
        procs.append(proc)
        return proc

    start.log = lambda name: (tmp_path / f"{name}.log").read_text()  # type: ignore[attr-defined]
    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait(proc, name, workers, timeout=300):
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"worker {name} did not finish in {timeout} s:\n{workers.log(name)[-3000:]}")
    assert rc == 0, workers.log(name)[-3000:]


def test_two_workers_share_one_study(pg_url, workers):
    study = f"pg-{uuid.uuid4().hex[:8]}"
    a, b = workers(pg_url, study, 4, "a"), workers(pg_url, study, 4, "b")
    _wait(a, "a", workers)
    _wait(b, "b", workers)
    trials = optuna.load_study(study_name=study, storage=pg_url).get_trials()
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) >= 4  # each worker may finish the trial it had started when the 4th completed
    assert {t.user_attrs["worker"] for t in done} == {f"{os.uname().nodename}:{a.pid}", f"{os.uname().nodename}:{b.pid}"}


def test_a_killed_workers_trial_is_retried_by_another(pg_url, workers):
    study = f"pg-kill-{uuid.uuid4().hex[:8]}"
    victim = workers(pg_url, study, 4, "victim")
    me = f"{os.uname().nodename}:{victim.pid}"
    storage = optuna.storages.RDBStorage(pg_url)
    deadline, killed = time.monotonic() + 180, None
    while time.monotonic() < deadline and killed is None:
        assert victim.poll() is None, workers.log("victim")[-3000:]
        for t in optuna.load_study(study_name=study, storage=storage).get_trials() if _exists(study, storage) else []:
            # mid-trial: running, owned by the victim, and at least one evaluation reported
            if t.state == optuna.trial.TrialState.RUNNING and t.user_attrs.get("worker") == me and t.intermediate_values:
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                killed = t.number
                break
        time.sleep(0.1)
    assert killed is not None, "the victim never got mid-trial"

    survivor = workers(pg_url, study, 4, "survivor")
    _wait(survivor, "survivor", workers)
    trials = {t.number: t for t in optuna.load_study(study_name=study, storage=storage).get_trials()}
    assert trials[killed].state == optuna.trial.TrialState.FAIL  # failed by the heartbeat check
    retries = [t for t in trials.values() if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1, {n: (t.state, t.system_attrs) for n, t in trials.items()}
    retry = retries[0]
    assert retry.state == optuna.trial.TrialState.COMPLETE and retry.params == trials[killed].params
    assert retry.user_attrs["worker"] == f"{os.uname().nodename}:{survivor.pid}"
    complete = [t for t in trials.values() if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 4  # all requested trials completed, the killed one included (as its retry)
    log = workers.log("survivor")
    assert "already done" in log


def _exists(study: str, storage) -> bool:
    return any(s.study_name == study for s in optuna.get_all_study_summaries(storage))


def test_workers_opening_an_empty_database_together_all_succeed(pg_url):
    """Optuna creates its schema on first open; workers started together must not collide there."""
    from tuneproof.search._storage import open_storage

    schema = f"race_{uuid.uuid4().hex[:8]}"  # an empty schema stands in for a new database
    admin = sqlalchemy.create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(sqlalchemy.text(f"CREATE SCHEMA {schema}"))
    url = f"{pg_url}?options=-csearch_path%3D{schema}"
    start, errors = threading.Barrier(6), []

    def open_one():
        start.wait()
        try:
            open_storage(url).get_all_studies()
        except Exception as exc:  # noqa: BLE001 - collected and reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors[0]
        with admin.connect() as conn:
            tables = conn.execute(sqlalchemy.text("SELECT count(*) FROM pg_tables WHERE schemaname = :s"), {"s": schema})
            assert tables.scalar() > 5  # the schema was created there, once
    finally:
        with admin.begin() as conn:
            conn.execute(sqlalchemy.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
