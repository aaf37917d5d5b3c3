"""tuneproof: audit, curate, tune, train and evaluate LLM fine-tunes, with proof.

The public API is small and imports its heavy dependencies (torch, transformers)
only when a function that needs them is called, so ``import tuneproof`` is fast.

Example:
    >>> import tuneproof
    >>> cfg = tuneproof.load_config("examples/qa_demo.yaml", overrides=["train.lr=3e-4"])
    >>> cfg.train.lr
    0.0003
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DataError",
    "ModelLoadError",
    "NotImplementedYet",
    "RunConfig",
    "TuneproofError",
    "__version__",
    "audit",
    "build_report",
    "curate",
    "evaluate",
    "load_config",
    "load_model",
    "load_records",
    "lr_sweep",
    "run",
    "train",
    "tune",
]

from tuneproof.config import RunConfig, load_config
from tuneproof.errors import (
    ConfigError,
    DataError,
    ModelLoadError,
    NotImplementedYet,
    TuneproofError,
)

# Eager, and after the other imports: `audit`, `train` and `evaluate` are also the names of
# the subpackages that hold these functions. Importing a subpackage binds its name on this
# module once, the first time; binding the functions here, after that, keeps
# `tuneproof.train(...)` a function however the subpackages are imported later. None of
# these imports torch (a test pins that).
from tuneproof.audit import audit, curate
from tuneproof.evaluate import evaluate
from tuneproof.search import lr_sweep, tune
from tuneproof.train import train

if TYPE_CHECKING:
    from tuneproof.data import load_records
    from tuneproof.models import load_model
    from tuneproof.pipeline import run
    from tuneproof.report import build_report


def __getattr__(name: str) -> Any:
    # Lazy: tuneproof.models imports torch and transformers, which take seconds.
    if name == "load_model":
        from tuneproof.models import load_model

        return load_model
    if name == "run":
        from tuneproof.pipeline import run

        return run
    if name == "load_records":
        from tuneproof.data import load_records

        return load_records
    if name == "build_report":
        # Exported as build_report, not report: tuneproof.report is the subpackage's name.
        from tuneproof.report import build_report

        return build_report
    raise AttributeError(f"module 'tuneproof' has no attribute {name!r}")
