"""Hand a finished run's model over: a standalone folder, GGUF files, an Ollama Modelfile, a model card.

Example:
    >>> from tuneproof.export import export
    >>> export("runs/qa", "merged", "exports/qa").out  # doctest: +SKIP
"""

from __future__ import annotations

from tuneproof.export._api import FORMATS, ExportResult, export
from tuneproof.export._card import model_card, write_card
from tuneproof.export._run import RunModel, open_run

__all__ = ["FORMATS", "ExportResult", "RunModel", "export", "model_card", "open_run", "write_card"]
