"""Helpers shared by the sweep and the search: one short training in its own folder."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

__all__ = ["finish_child_run", "fmt_value", "prune_outputs", "short_header"]

# Column headers of the search table, in two short lines so that a study's table with every
# default dimension fits 80 columns (a pipe or a log file, where rich cannot measure a terminal).
_HEADERS = {"weight_decay": "weight\ndecay", "warmup_ratio": "warmup\nratio", "batch_size": "batch\nsize",
            "lora_r": "lora\nr", "lora_alpha": "lora\nalpha", "lora_dropout": "lora\ndropout"}  # fmt: skip


def fmt_value(v: Any, rate: bool = False) -> str:
    """A parameter's value for a table or a line: short, and never a rate shown as 0.000.

    Rates, and any float below 1e-3, in scientific notation with up to 3 significant digits
    (``5e-04``, ``3.16e-04``); other floats with 3 significant digits; the rest as ``str``.

    Example:
        >>> fmt_value(5e-4, rate=True), fmt_value(0.001, rate=True), fmt_value(0.05), fmt_value(16)
        ('5e-04', '1e-03', '0.05', '16')
    """
    if not isinstance(v, float):
        return str(v)
    if v and (rate or abs(v) < 1e-3):
        mantissa, exponent = f"{v:.2e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"
    return f"{v:.3g}"


def short_header(name: str) -> str:
    """A search dimension's column header: its name, split onto two lines when long."""
    return _HEADERS.get(name, name)


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
