"""The pipeline's compute budget: the final training's steps, and the search's share of them.

Two rules, both in examples seen (steps x batch):

- **The final training's budget is counted over the data as given.** ``train.epochs`` is
  what the user planned for ``data.path``; curation decides *which* examples train, not
  *how many updates* the model gets. Without this, every removed record also removed steps
  (a curated run of 40 steps against 45 uncurated), and runs ended still improving.
- **The search costs a fixed share of the final training** (``pipeline.search_budget``,
  default 0.5): the lr sweep and the trials together train at most that many examples,
  half each, unless ``pipeline.sweep_steps`` / ``tune_steps`` are set. The whole run then
  costs at most 1.5x one training of the plan, except for small trainings, where the sweep's
  floor of ``MIN_SWEEP_STEPS`` per rate costs more.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from tuneproof.config import RunConfig

__all__ = ["MIN_SWEEP_STEPS", "Plan", "curation_factor", "final_steps", "plan", "search_steps"]

MIN_SWEEP_STEPS = 4


def curation_factor(curate_dir: Path | None) -> float:
    """Records as given / records kept by curation (1.0 when curation did not run or kept all)."""
    manifest = curate_dir / "manifest.json" if curate_dir else None
    if manifest is None or not manifest.is_file():
        return 1.0
    counts = json.loads(manifest.read_text())["counts"]
    kept, removed = int(counts["kept"]), int(counts["removed"])
    return (kept + removed) / kept if kept else 1.0


def final_steps(cfg: RunConfig, n_train: int, factor: float = 1.0) -> int:
    """Optimizer steps of the final training at the config's batch size.

    ``train.max_steps`` when set; else ``train.epochs`` passes over the training split as it
    would have been without curation (``n_train x factor`` records).
    """
    t = cfg.train
    if t.max_steps:
        return t.max_steps
    batches = math.ceil(n_train * factor / t.batch_size)
    return max(1, math.ceil(t.epochs * batches / t.grad_accum))


def search_steps(cfg: RunConfig, final: int, n_lrs: int, n_trials: int) -> tuple[int | None, int | None]:
    """Steps per swept rate and per trial: the explicit ``pipeline`` values, else the budget's share.

    ``(None, None)`` parts mean the stage's own default (``pipeline.search_budget: null``).
    """
    pl = cfg.pipeline
    sweep, tune = pl.sweep_steps, pl.tune_steps
    if pl.search_budget is not None:
        half = pl.search_budget * final / 2
        # A rate is scored by its validation loss after its run; below a few steps that is mostly
        # the warm-up and the noise of one batch (measured: 1-3-step sweeps picked the smallest
        # rate), so the sweep gets at least MIN_SWEEP_STEPS per rate even past the budget.
        sweep = sweep or max(MIN_SWEEP_STEPS, math.floor(half / max(1, n_lrs)))
        tune = tune or max(1, math.floor(half / max(1, n_trials)))
    return sweep, tune


@dataclass
class Plan:
    """A run's budget in steps at the config's batch size."""

    final: int  # the final training, counted over the data as given
    factor: float  # records as given / records kept by curation
    sweep: int | None  # per swept rate; None: the sweep's default
    tune: int | None  # per trial; None: full length
    n_lrs: int  # swept rates
    n_trials: int  # search trials


def plan(cfg: RunConfig, n_train: int, curate_dir: Path | None) -> Plan:
    """The budget of a run whose training split holds ``n_train`` records (after curation in ``curate_dir``)."""
    from tuneproof.search import DEFAULT_SWEEP_GRID

    factor = curation_factor(curate_dir) if cfg.pipeline.stages["curate"] else 1.0
    final = final_steps(cfg, n_train, factor)
    n_lrs = len(cfg.pipeline.sweep_lrs or DEFAULT_SWEEP_GRID[cfg.model.method])
    n_trials = cfg.pipeline.tune_trials or cfg.search.n_trials
    sweep, tune = search_steps(cfg, final, n_lrs, n_trials)
    return Plan(final, factor, sweep, tune, n_lrs, n_trials)
