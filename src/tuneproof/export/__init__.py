"""Hand a finished run's model over: a standalone folder, GGUF files, an Ollama Modelfile, a model card.

Example:
    >>> from tuneproof.export import export
    >>> export("runs/qa", "merged", "exports/qa").out  # doctest: +SKIP
"""

from __future__ import annotations

from tuneproof.export._run import RunModel, open_run

__all__ = ["RunModel", "open_run"]
