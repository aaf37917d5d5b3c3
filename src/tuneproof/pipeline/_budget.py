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
- **A trial must be long enough to rank configurations**: at least ``MIN_TRIAL_FRACTION`` of
  the final training, and a search at least ``MIN_TUNE_TRIALS`` of them (the baseline and two
  proposals). When the trials' share affords fewer, the search trials are skipped and the lr
  sweep takes the whole share; the final training then uses the sweep's rate for it. Measured
  (outcome --quick, BENCHMARKS.md): trials of 2-7 steps ranked by noise; the baseline trial won
  6 of 10 runs, and two of the four proposals that won made the final training worse. At the
  default budget (0.5) the search is the lr sweep alone; ``search_budget: 1.5`` runs 3 trials.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from tuneproof.config import RunConfig

__all__ = ["MIN_SWEEP_STEPS", "MIN_TRIAL_FRACTION", "MIN_TUNE_TRIALS", "Plan", "curation_factor", "final_steps", "plan",
           "search_plan"]

MIN_SWEEP_STEPS = 4
MIN_TRIAL_FRACTION = 0.25  # of the final training's steps
MIN_TUNE_TRIALS = 3  # the baseline trial and two proposals


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
    return cfg.train.planned_steps(n_train * factor)


def search_plan(cfg: RunConfig, final: int, n_lrs: int, n_trials: int) -> tuple[int | None, int | None, int, str | None]:
    """Steps per swept rate, steps per trial, the number of trials, and why the trials are skipped.

    The explicit ``pipeline`` values win; else the budget's share. ``None`` steps mean the
    stage's own default (``pipeline.search_budget: null``). ``n_trials`` comes back lowered to
    what the budget affords at ``MIN_TRIAL_FRACTION`` of the final training, or 0 with the
    reason when that is fewer than ``MIN_TUNE_TRIALS``; the sweep then gets the whole share.

    Example:
        >>> from tuneproof.config import load_config
        >>> cfg = load_config({"name": "x", "task": "sft", "data": {"path": "d.jsonl"}})
        >>> search_plan(cfg, 100, n_lrs=5, n_trials=12)[:3]  # 0.5 x 100 steps: one 25-step trial fits
        (10, None, 0)
    """
    pl = cfg.pipeline
    sweep, tune, skipped = pl.sweep_steps, pl.tune_steps, None
    if pl.search_budget is None:
        return sweep, tune, n_trials, None
    share = pl.search_budget * final
    if tune is None and n_trials > 0:
        trial = max(MIN_SWEEP_STEPS, math.ceil(MIN_TRIAL_FRACTION * final))
        affordable = math.floor(share / 2 / trial)
        if affordable < MIN_TUNE_TRIALS:
            skipped = (f"pipeline.search_budget {pl.search_budget:g} gives the trials {share / 2:g} of the final training's "
                       f"{final} steps: {affordable} trial(s) of {trial} steps ({MIN_TRIAL_FRACTION:.0%} of it, the least that "
                       f"ranks configurations), and a search needs {MIN_TUNE_TRIALS} (the baseline and two proposals); "
                       "the lr sweep takes the whole share and the final training uses its rate for the training. "
                       f"To search: pipeline.search_budget >= {2 * MIN_TUNE_TRIALS * MIN_TRIAL_FRACTION:g}, or set pipeline.tune_steps")  # fmt: skip
            n_trials = 0
        else:
            n_trials = min(n_trials, affordable)
            tune = math.floor(share / 2 / n_trials)
    # A rate is scored by its validation loss after its run; below a few steps that is mostly
    # the warm-up and the noise of one batch (measured: 1-3-step sweeps picked the smallest
    # rate), so the sweep gets at least MIN_SWEEP_STEPS per rate even past the budget.
    sweep_share = share if n_trials == 0 else share / 2
    sweep = sweep or max(MIN_SWEEP_STEPS, math.floor(sweep_share / max(1, n_lrs)))
    return sweep, tune, n_trials, skipped


@dataclass
class Plan:
    """A run's budget in steps at the config's batch size."""

    final: int  # the final training, counted over the data as given
    factor: float  # records as given / records kept by curation
    sweep: int | None  # per swept rate; None: the sweep's default
    tune: int | None  # per trial; None: full length
    n_lrs: int  # swept rates
    n_trials: int  # search trials; 0: skipped (see tune_skipped)
    tune_skipped: str | None = None  # why the budget runs no search trials


def plan(cfg: RunConfig, n_train: int, curate_dir: Path | None) -> Plan:
    """The budget of a run whose training split holds ``n_train`` records (after curation in ``curate_dir``)."""
    from tuneproof.search import DEFAULT_SWEEP_GRID

    factor = curation_factor(curate_dir) if cfg.pipeline.stages["curate"] else 1.0
    final = final_steps(cfg, n_train, factor)
    n_lrs = len(cfg.pipeline.sweep_lrs or DEFAULT_SWEEP_GRID[cfg.model.method])
    n_trials = cfg.pipeline.tune_trials or cfg.search.n_trials
    sweep, tune, n_trials, skipped = search_plan(cfg, final, n_lrs, n_trials)
    return Plan(final, factor, sweep, tune, n_lrs, n_trials, skipped)
