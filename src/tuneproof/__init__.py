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
    "evaluate",
    "load_config",
    "load_model",
    "load_records",
    "lr_sweep",
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

# Eager, and after the other imports: tuneproof.evaluate is also the name of the package
# that holds the function; binding the function here keeps `tuneproof.evaluate(...)`
# callable after any later `import tuneproof.evaluate._x`. It imports numpy, not torch.
from tuneproof.evaluate import evaluate

if TYPE_CHECKING:
    from tuneproof.data import load_records
    from tuneproof.models import load_model
    from tuneproof.search import lr_sweep, tune
    from tuneproof.train import train


def __getattr__(name: str) -> Any:
    # Lazy: tuneproof.models imports torch and transformers, which take seconds.
    if name == "load_model":
        from tuneproof.models import load_model

        return load_model
    if name == "load_records":
        from tuneproof.data import load_records

        return load_records
    if name == "train":
        # The subpackage is callable: tuneproof.train(config, ...) runs one training.
        import tuneproof.train as train_package

        return train_package
    if name in ("lr_sweep", "tune"):
        import tuneproof.search as search

        return getattr(search, name)
    raise AttributeError(f"module 'tuneproof' has no attribute {name!r}")
