"""Causes of a run that did not prove, in tuneproof's own stages: what curation removed, where the rate came from.

The decision must not blame only the data and the budget when its own interventions may
have caused the failure. Each cause here is listed only when the run's files support it:

- **Curation** (``curate/manifest.json``): listed when its removals caused the shortage of
  training records (the too_few_examples risk is present, and the rows it removed would have
  given enough), or when the run regressed after curation removed a large share of the rows
  (more than the preflight's data_noise share). Exact duplicates do not count: each is an
  identical copy of a kept row, so removing it cannot starve the training.
- **The learning rate** (``lr_sweep/lr_sweep.json``, ``train/train.json``): listed when the
  sweep's best rate was its smallest or largest, and the final training used a rate at that
  edge (closer to the edge rate than to its neighbour in the grid, or beyond it), so the
  optimum may lie outside what was tried.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tuneproof.config import RunConfig
from tuneproof.pipeline._preflight import DATA_NOISE_SHARE, MIN_TRAIN_RECORDS

__all__ = ["curation_cause", "sweep_edge_cause"]


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text()) if path.exists() else None
    except (OSError, json.JSONDecodeError):
        return None


def curation_cause(cfg: RunConfig, ev: dict[str, Any] | None, pre: dict[str, Any]) -> tuple[dict[str, str], bool] | None:
    """The curation cause and whether curation caused the shortage of training records; None without evidence.

    Args:
        cfg: the run config (its run dir holds ``curate/manifest.json``).
        ev: ``evaluate/eval.json`` (its verdict), or None.
        pre: ``preflight/preflight.json`` (its risks and train count).
    """
    if not cfg.pipeline.stages.get("curate", True):
        return None
    manifest = _read(cfg.run_dir / "curate" / "manifest.json")
    counts = (manifest or {}).get("counts") or {}
    total, kept, removed = counts.get("input_rows") or 0, counts.get("kept") or 0, counts.get("removed") or 0
    by_check = counts.get("removed_by_check") or {}
    lost = max(0, removed - by_check.get("exact_duplicate", 0))  # rows whose content left the training
    if not total or not kept or not lost:
        return None
    n_train = (pre.get("counts") or {}).get("train")
    short = any(r.get("code") == "too_few_examples" for r in pre.get("risks", []))
    without = math.floor(n_train * (kept + lost) / kept) if isinstance(n_train, int) else None
    shortage = short and without is not None and without >= MIN_TRAIN_RECORDS
    regressed = bool(ev and ev.get("verdict") == "regressed") and lost / total > DATA_NOISE_SHARE
    if not (shortage or regressed):
        return None
    per_check = ", ".join(f"{c} {k} of {total}" for c, k in by_check.items())
    evidence = f"curation removed {removed / total:.0%} of the rows ({per_check})"
    if shortage:
        evidence += (f"; the split gave {n_train} training records of the {kept} kept, where the rows before curation "
                     f"would have given about {without} (the too_few_examples risk starts below {MIN_TRAIN_RECORDS})")  # fmt: skip
    else:
        evidence += f", and the tuned model regressed: delta {ev['delta']['value']:+.4g}"  # type: ignore[index]
    top = max((c for c in by_check if c != "exact_duplicate"), key=lambda c: by_check[c], default=None)
    return {"code": "curation", "evidence": evidence, "next": _curation_fix(top)}, shortage


def _curation_fix(check: str | None) -> str:
    if check == "off_domain":
        return ("check the domain description (data.domain_text), or give domain references (data.domain); "
                "read what it removed in curate/removed.jsonl")  # fmt: skip
    if check == "select":
        return "keep a larger fraction (select), or none"
    return (f"read what {check} removed in curate/removed.jsonl; if the records are fine, keep them "
            f"(audit.decisions.{check}: flag), or lower audit.max_check_removed_share to let the removal budget hold them back")  # fmt: skip


def sweep_edge_cause(run_dir: Path, tr: dict[str, Any]) -> dict[str, str] | None:
    """The cause "the rate chosen sits at the edge of the sweep", or None when the files do not show it."""
    sweep = _read(run_dir / "lr_sweep" / "lr_sweep.json")
    if not sweep or sweep.get("edge") not in ("low", "high"):
        return None
    used = (tr.get("data") or {}).get("lr")
    choice = _read(run_dir / "train" / "lr_choice.json")
    if choice and isinstance(choice.get("lr"), (int, float)):
        used = choice["lr"]
    grid = sorted(float(p["lr"]) for p in sweep.get("points", []) if isinstance(p.get("lr"), (int, float)) and p["lr"] > 0)
    if not isinstance(used, (int, float)) or used <= 0 or len(grid) < 2:
        return None
    high = sweep["edge"] == "high"
    edge, neighbour = (grid[-1], grid[-2]) if high else (grid[0], grid[1])
    middle = (math.log(edge) + math.log(neighbour)) / 2
    if (math.log(used) < middle) if high else (math.log(used) > middle):
        return None  # the training moved away from the edge (e.g. a longer horizon's lower rate)
    side = "largest" if high else "smallest"
    evidence = (f"the lr sweep's best rate {sweep.get('best_lr', edge):g} is the {side} swept ({', '.join(f'{x:g}' for x in grid)}) "
                f"and the final training used {used:g}: the best rate may lie {'above' if high else 'below'} the sweep")  # fmt: skip
    fix = (f"sweep {'higher' if high else 'lower'} rates too (pipeline.sweep_lrs, e.g. "
           f"[{', '.join(f'{x:g}' for x in ([*grid, edge * 3] if high else [edge / 10, *grid]))}])")  # fmt: skip
    return {"code": "lr_at_sweep_edge", "evidence": evidence, "next": fix}
