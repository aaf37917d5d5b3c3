"""Training engine: SFT and classification; full, LoRA and freeze; early stopping, overfit guard, MLflow.

:func:`train` runs one training from a run config and writes, under ``<run_dir>/train``:
the model (PEFT adapter or full model) with its tokenizer (and ``labels.json``), ``train.json``
(final and best metrics, best step, the guard's findings), ``split.json`` and ``test.jsonl``
(the held-out split, for evaluation), and checkpoints for ``--resume``.

Example:
    >>> from tuneproof.train import train
    >>> result = train("examples/qa_demo.yaml", overrides=["train.max_steps=50"])  # doctest: +SKIP
    >>> result.best_metrics["loss"], result.guard["overfitting"]  # doctest: +SKIP
"""

from __future__ import annotations

import sys
import types
from typing import Any

from tuneproof.train._batching import length_grouped_batches
from tuneproof.train._engine import DEFAULT_LR, TrainResult, resolve_bf16, train
from tuneproof.train._guard import EvalPoint, GuardFindings, OverfitGuard, check_overfitting
from tuneproof.train._split import Split, split_records

__all__ = [
    "DEFAULT_LR",
    "EvalPoint",
    "GuardFindings",
    "OverfitGuard",
    "Split",
    "TrainResult",
    "check_overfitting",
    "length_grouped_batches",
    "resolve_bf16",
    "split_records",
    "train",
]


class _CallableModule(types.ModuleType):
    """Lets ``tuneproof.train(config)`` call :func:`train` although ``tuneproof.train`` is this package.

    Python binds a subpackage to its parent's attribute of the same name on import, so a
    top-level ``train`` function would be replaced by this module; making the module
    callable keeps both ``tuneproof.train(...)`` and ``from tuneproof.train import ...``.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> TrainResult:
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
