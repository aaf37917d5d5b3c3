"""Helpers shared by the sweep and the search: one short training in its own folder."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

__all__ = ["finish_child_run", "prune_outputs"]


def prune_outputs(out: Path) -> None:
    """Delete a trial's checkpoints and model (keep ``train.json``): a study would fill the disk."""
    for name in ("checkpoints", "model", "merged"):
        shutil.rmtree(out / name, ignore_errors=True)


def finish_child_run(
    tracking: Any, out: Path, state: str, error: str | None = None, tags: dict[str, Any] | None = None
) -> str | None:
    """Tag the MLflow run the engine opened in ``out`` with how the trial ended.

    A pruned run is marked KILLED (the engine closed it as FAILED when the pruning
    exception went through it) and tagged ``tuneproof.trial_state=pruned``.
    """
    from tuneproof import track

    id_file = out / "mlflow_run_id"
    if not id_file.is_file():
        return None
    run_id = id_file.read_text().strip()
    with contextlib.suppress(Exception):
        client = track._client(tracking.resolved_uri())
        client.set_tag(run_id, "tuneproof.trial_state", state)
        for key, value in (tags or {}).items():
            client.set_tag(run_id, key, str(value))
        if error:
            client.set_tag(run_id, "tuneproof.error", error[:500])
        if state == "pruned":
            client.set_terminated(run_id, status="KILLED")
    return run_id
