"""A finished run's model as the export, predict and chat commands see it.

A run folder (``runs/<name>``) holds ``config.yaml`` (the base model, the task, the prompt
format's settings), ``train/model`` (the tuned weights or LoRA adapter) and, when the
decision shipped it, ``model/`` (the same files, the deliverable). The shipped model is
used when there is one; otherwise the trained one, marked as not proven.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneproof.data import Record, Schema
from tuneproof.errors import ModelLoadError, TuneproofError

__all__ = ["RunModel", "open_run", "sft_inputs"]


@dataclass(frozen=True)
class RunModel:
    """What a run trained, and how to load it.

    Attributes:
        run_dir: the run folder.
        cfg: the run's :class:`~tuneproof.config.RunConfig`, read from ``config.yaml``.
        model_dir: ``model/`` when the run shipped, else ``train/model``.
        shipped: whether the decision shipped the model (its improvement was proven).
        verdict: the evaluation's verdict from ``decision.json`` (``not_evaluated`` without one).
    """

    run_dir: Path
    cfg: Any
    model_dir: Path
    shipped: bool
    verdict: str

    @property
    def task(self) -> str:
        return str(self.cfg.task)

    @property
    def base(self) -> str:
        return str(self.cfg.model.name)

    @property
    def labels(self) -> list[str] | None:
        """The class names in index order (classification), as the trained model saved them."""
        if self.task != "classification":
            return None
        from tuneproof.evaluate._loading import read_labels

        return read_labels(self.model_dir) or self.cfg.model.labels

    def load(self, *, which: str = "tuned") -> tuple[Any, Any]:
        """``(model, tokenizer)`` in eval mode on the inference device: ``tuned`` or ``base``."""
        from tuneproof.evaluate._loading import load_tuned
        from tuneproof.models import inference_device, load_model

        seed = self.cfg.train.seed
        if which == "base":
            model, tok = load_model(self.base, self.task, labels=self.labels, seed=seed)  # type: ignore[arg-type]
        else:
            model, tok = load_tuned(self.model_dir, self.base, self.task, labels=self.labels, seed=seed)
        return model.eval().to(inference_device()), tok


def open_run(run_dir: str | os.PathLike) -> RunModel:
    """Read a run folder's config, decision and model location; load no weights.

    Raises:
        TuneproofError: the folder is not a run folder (no ``config.yaml``), or it holds no
            trained model (the train stage did not finish).
    """
    from tuneproof.config import load_config

    root = Path(run_dir)
    config = root / "config.yaml"
    if not config.is_file():
        raise TuneproofError(
            f"{root}: not a run folder (no config.yaml). Fix: pass runs/<name>, the folder `tuneproof run` wrote."
        )
    cfg = load_config(config)
    decision = _read_json(root / "decision.json")
    shipped = bool(decision.get("ship")) and (root / "model").is_dir()
    model_dir = root / "model" if shipped else root / "train" / "model"
    if not model_dir.is_dir():
        raise ModelLoadError(
            f"{root}: no trained model (neither model/ nor train/model). Fix: run `tuneproof run {config}` "
            "until the train stage finishes; pipeline.json says which stage stopped."
        )
    return RunModel(root, cfg, model_dir, shipped, str(decision.get("verdict") or "not_evaluated"))


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TuneproofError(f"{path}: not readable JSON ({exc}). Fix: rerun `tuneproof run` to rewrite it.") from exc
    return value if isinstance(value, dict) else {}


def sft_inputs(records: list[Record], source: str) -> list[Any]:
    """Each record as an SFT example whose prompt is formatted as training formatted it.

    Prompt/completion and Alpaca records keep their prompt (the completion is not used);
    ``text`` becomes the user turn; a chat that ends with a user turn gets the next assistant
    turn, one that ends with an assistant turn gets that turn again.
    """
    from tuneproof.evaluate._sft import sft_examples

    shaped = []
    for r in records:
        if r.schema in (Schema.TEXT, Schema.TEXT_LABEL):
            r = Record(r.id, Schema.PROMPT_COMPLETION, {"prompt": str(r.text), "completion": ""}, r.extra)
        elif r.schema == Schema.CHAT and (not r.fields["messages"] or r.fields["messages"][-1]["role"] != "assistant"):
            r = Record(r.id, r.schema, {"messages": [*r.fields["messages"], {"role": "assistant", "content": ""}]}, r.extra)
        shaped.append(r)
    return sft_examples(shaped, source)
