"""Learning-rate sweep and Bayesian hyperparameter search (Optuna) over the training engine.

- :func:`lr_sweep`: a few short trainings on a log grid of rates; writes
  ``<run dir>/lr_sweep/lr_sweep.json`` and ``lr_sweep.png`` and recommends the lr range.
- :func:`tune`: seeded TPE over a default space per task and method (the config's
  ``search.space`` overrides or extends it), each trial one short training reporting
  validation loss to a PatientPruner-wrapped Hyperband pruner; writes
  ``<run dir>/tune/best.yaml``, ``trials.json`` and ``importances.json``. The study lives in
  ``<run dir>/optuna.db`` or a shared PostgreSQL database, with heartbeats and retries.

Example:
    >>> from tuneproof.search import lr_sweep, tune
    >>> sweep = lr_sweep("examples/sentiment.yaml", steps=20)  # doctest: +SKIP
    >>> result = tune("examples/sentiment.yaml", n_trials=8)  # doctest: +SKIP
    >>> result.best_yaml  # doctest: +SKIP
"""

from __future__ import annotations

from tuneproof.search._space import DEFAULT_LR_RANGE, PARAM_TARGETS, apply_params, baseline_params, default_space, resolve_space
from tuneproof.search._storage import open_storage, redact, resolve_url
from tuneproof.search._sweep import DEFAULT_SWEEP_GRID, SweepResult, lr_sweep, recommend_range, training_lr
from tuneproof.search._tune import TuneResult, tune

__all__ = [
    "DEFAULT_LR_RANGE",
    "DEFAULT_SWEEP_GRID",
    "PARAM_TARGETS",
    "SweepResult",
    "TuneResult",
    "apply_params",
    "baseline_params",
    "default_space",
    "lr_sweep",
    "open_storage",
    "recommend_range",
    "redact",
    "resolve_space",
    "resolve_url",
    "training_lr",
    "tune",
]
