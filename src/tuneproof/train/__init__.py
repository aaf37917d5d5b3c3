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

import importlib
from typing import TYPE_CHECKING, Any

from tuneproof.train._batching import length_grouped_batches
from tuneproof.train._split import Split, split_records

if TYPE_CHECKING:
    from tuneproof.train._engine import DEFAULT_LR, TrainResult, resolve_bf16
    from tuneproof.train._guard import EvalPoint, GuardFindings, OverfitGuard, check_overfitting

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

# These modules import transformers (and so torch, seconds); load them on first use so
# that `import tuneproof` stays fast.
_LAZY = {
    "DEFAULT_LR": "_engine",
    "TrainResult": "_engine",
    "resolve_bf16": "_engine",
    "EvalPoint": "_guard",
    "GuardFindings": "_guard",
    "OverfitGuard": "_guard",
    "check_overfitting": "_guard",
}


def train(config: Any, **kwargs: Any) -> TrainResult:
    """Train one model from a run config; see :func:`tuneproof.train._engine.train`.

    Example:
        >>> from tuneproof.train import train
        >>> result = train("examples/qa_demo.yaml", overrides=["train.max_steps=50"])  # doctest: +SKIP

    Raises:
        ConfigError: the config cannot work with this model or data (checked before training).
        DataError: the data cannot be read or a split is empty.
    """
    from tuneproof.train._engine import train as run

    return run(config, **kwargs)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"tuneproof.train.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'tuneproof.train' has no attribute {name!r}")
