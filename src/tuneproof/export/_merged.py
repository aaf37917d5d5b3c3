"""The run's model as one standalone Hugging Face folder: a LoRA adapter merged into the base weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tuneproof._io import atomic_write
from tuneproof.export._run import RunModel

__all__ = ["merged_model", "save_merged"]


def merged_model(run: RunModel) -> tuple[Any, Any]:
    """``(model, tokenizer)``: the tuned model with any LoRA adapter merged in (a plain transformers model)."""
    model, tok = run.load()
    if hasattr(model, "merge_and_unload"):  # a PeftModel: fold W + BA into W, drop the adapter modules
        model = model.merge_and_unload()
    return model.eval(), tok


def save_merged(run: RunModel, model: Any, tok: Any, out: Path) -> list[str]:
    """Write the merged model (safetensors only), its tokenizer and, for a classifier, ``labels.json``.

    Returns:
        The names of the files written.
    """
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    if run.labels:
        atomic_write(out / "labels.json", json.dumps(run.labels, indent=1))
    return sorted(p.name for p in out.iterdir() if p.is_file())
