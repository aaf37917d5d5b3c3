"""MLflow wiring shared by every stage: one run per unit of work, optionally nested.

A training, a tuning trial, an evaluation or the pipeline itself each open exactly one run
with :func:`start_run`; the helpers log to that run by id, never to "whatever run is
active", so a second run can't appear by accident (transformers' own callback opens one
when ``trainer.evaluate()`` follows ``trainer.train()``).

Example:
    >>> from tuneproof.config import TrackingConfig
    >>> from tuneproof import track
    >>> with track.start_run(TrackingConfig(runs_dir="/tmp/runs"), "demo") as run:  # doctest: +SKIP
    ...     track.log_params(run, {"lr": 3e-4})
    ...     track.log_metrics(run, {"train_loss": 1.2}, step=10)
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneproof._io import disk_error
from tuneproof.config import TrackingConfig
from tuneproof.errors import TuneproofError

__all__ = [
    "TrackedRun",
    "log_artifact",
    "log_metrics",
    "log_params",
    "log_text",
    "set_tags",
    "start_run",
]

# MLflow limits a param value to 6000 characters; keep ours readable well below that.
_MAX_PARAM_CHARS = 500


@dataclass(frozen=True)
class TrackedRun:
    """An open MLflow run: its id and the client bound to its tracking store."""

    run_id: str
    experiment_id: str
    tracking_uri: str
    client: Any  # mlflow.MlflowClient

    @property
    def url_hint(self) -> str:
        return f"{self.tracking_uri} (run {self.run_id})"


def _client(tracking_uri: str) -> Any:
    # mlflow logs alembic migrations at INFO on first use of a sqlite store; that is noise here.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    for name in ("mlflow", "mlflow.system_metrics.system_metrics_monitor"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def _experiment_id(client: Any, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # another process created it between our two calls
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


@contextlib.contextmanager
def start_run(
    tracking: TrackingConfig,
    name: str,
    *,
    parent_run_id: str | None = None,
    run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    system_metrics: bool = True,
) -> Iterator[TrackedRun]:
    """Open one MLflow run, yield it, and end it as FINISHED, or FAILED on an exception.

    Args:
        tracking: where the store is (``tracking.resolved_uri()``) and the experiment name.
        name: the run name shown in the MLflow UI.
        parent_run_id: make this run a child of that run (a pipeline run, a study).
        run_id: reopen an existing run instead of creating one (used by ``--resume``, so that
            a resumed training stays one run).
        tags: extra tags set on the run.
        system_metrics: sample CPU, memory and disk use (every 10 s) while the run is open.

    Yields:
        A :class:`TrackedRun`; pass it to :func:`log_params`, :func:`log_metrics`...

    Raises:
        TuneproofError: the tracking store can't be opened or the run can't be created.
    """
    uri = tracking.resolved_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        client = _client(uri)
        experiment_id = _experiment_id(client, tracking.experiment)
        all_tags = dict(tags or {})
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        if run_id is None:
            run = client.create_run(experiment_id, run_name=name, tags=all_tags)
            run_id = run.info.run_id
        else:
            client.update_run(run_id, status="RUNNING")
            for key, value in all_tags.items():
                client.set_tag(run_id, key, value)
    except TuneproofError:
        raise
    except Exception as exc:
        raise disk_error(exc) or TuneproofError(
            f"cannot open the MLflow tracking store {uri!r}: {exc}. Fix: check tracking.uri in the "
            "config (unset means sqlite in the runs directory) and that the directory is writable."
        ) from exc

    handle = TrackedRun(run_id, experiment_id, uri, client)
    monitor = _system_monitor(handle) if system_metrics else None
    status = "FAILED"
    try:
        yield handle
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if monitor is not None:
            with contextlib.suppress(Exception):
                monitor.finish()
        # When the block failed, its error is the one to report: a store that can't record the
        # failure too (e.g. on a full disk) must not replace it.
        with contextlib.suppress(Exception) if status != "FINISHED" else contextlib.nullcontext():
            client.set_terminated(run_id, status=status)


def _system_monitor(run: TrackedRun) -> Any:
    """MLflow's system-metrics sampler bound to our run id; None where it can't start."""
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            monitor = SystemMetricsMonitor(
                run.run_id, sampling_interval=10, samples_before_logging=1, tracking_uri=run.tracking_uri
            )
            monitor.start()
        return monitor
    except Exception:  # psutil missing or an MLflow version without the monitor
        return None


def log_params(run: TrackedRun, params: Mapping[str, Any]) -> None:
    """Log flat parameters; values are stringified and cut to 500 characters."""
    from mlflow.entities import Param

    items = [Param(str(k), _short(v)) for k, v in params.items()]
    for start in range(0, len(items), 100):  # MLflow accepts at most 100 params per batch
        run.client.log_batch(run.run_id, params=items[start : start + 100])


def log_metrics(run: TrackedRun, metrics: Mapping[str, float], step: int | None = None) -> None:
    """Log numeric metrics at a step; non-numeric values are skipped."""
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [
        Metric(str(k), float(v), now, int(step or 0))
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    if items:
        run.client.log_batch(run.run_id, metrics=items)


def set_tags(run: TrackedRun, tags: Mapping[str, Any]) -> None:
    """Set string tags on the run."""
    for key, value in tags.items():
        run.client.set_tag(run.run_id, str(key), _short(value))


def log_artifact(run: TrackedRun, path: str | os.PathLike, artifact_path: str | None = None) -> None:
    """Copy one file (or a small folder) into the run's artifacts. Don't log checkpoints."""
    p = Path(path)
    if p.is_dir():
        run.client.log_artifacts(run.run_id, str(p), artifact_path)
    else:
        run.client.log_artifact(run.run_id, str(p), artifact_path)


def log_text(run: TrackedRun, text: str, artifact_file: str) -> None:
    """Write ``text`` as an artifact file, e.g. the config as ``config.yaml``."""
    run.client.log_text(run.run_id, text, artifact_file)


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= _MAX_PARAM_CHARS else text[: _MAX_PARAM_CHARS - 3] + "..."
