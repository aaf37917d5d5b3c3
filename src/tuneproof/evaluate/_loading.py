"""Load the tuned model: a full model directory, or a PEFT adapter on top of the base."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tuneproof.errors import ModelLoadError
from tuneproof.models import load_model, require_safetensors

__all__ = ["is_adapter", "load_tuned", "read_labels"]


def is_adapter(path: str | Path) -> bool:
    """True if ``path`` is a PEFT adapter directory (it holds ``adapter_config.json``)."""
    return (Path(path) / "adapter_config.json").is_file()


def load_tuned(
    tuned: str | Path,
    base: str | Path,
    task: str,
    *,
    labels: list[str] | None = None,
    seed: int = 0,
    merge: bool = False,
) -> tuple[Any, Any]:
    """``(model, tokenizer)`` for the tuned model; an adapter is applied to a fresh copy of ``base``.

    ``merge``: fold a LoRA adapter into that copy's weights (``merge_and_unload``), so scoring
    runs the plain architecture: an unmerged adapter adds two small matmuls to every adapted
    layer, which halves generation speed for a 135M model. The saved adapter is only read.
    Adapters PEFT cannot merge are kept unmerged.

    Raises:
        ModelLoadError: the directory is neither a model nor an adapter, or the adapter
            does not fit the base (other architecture, other shapes, missing modules).
    """
    if not is_adapter(tuned):
        return load_model(tuned, task, labels=labels, seed=seed)  # type: ignore[arg-type]
    # PEFT reads adapter_model.safetensors when there is one, else torch.loads adapter_model.bin.
    require_safetensors(tuned, "the adapter")
    adapter_cfg = _read_json(Path(tuned) / "adapter_config.json")
    recorded = adapter_cfg.get("base_model_name_or_path") or "unknown"
    model, tokenizer = load_model(base, task, labels=labels, seed=seed)  # type: ignore[arg-type]
    if (Path(tuned) / "tokenizer_config.json").is_file():
        tokenizer = _adapter_tokenizer(tuned)
    from peft import PeftModel

    try:
        model = PeftModel.from_pretrained(model, str(tuned), is_trainable=False)
    except Exception as exc:  # PEFT raises RuntimeError (shapes), ValueError (modules), KeyError...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"the adapter {tuned} does not fit the base model {base!r}: {first[:400]}. The adapter "
            f"was trained on {recorded!r}. Fix: pass that model as --base (the same architecture "
            "and sizes), or pass a full tuned model directory instead of an adapter."
        ) from exc
    _check_adapter_loaded(model, tuned, base, recorded)
    if merge and hasattr(model, "merge_and_unload"):
        try:
            model = model.merge_and_unload()
        except (NotImplementedError, ValueError, AttributeError):  # adapter types PEFT cannot fold in
            pass
    return model, tokenizer


def _adapter_tokenizer(path: str | Path) -> Any:
    """The tokenizer saved next to an adapter (an adapter dir has no config.json to resolve)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except Exception as exc:
        raise ModelLoadError(f"could not load the tokenizer saved with the adapter {path}: {exc}") from exc
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _check_adapter_loaded(model: Any, tuned: str | Path, base: str | Path, recorded: str) -> None:
    # PEFT only warns when the adapter's weights name modules the base doesn't have;
    # scoring then runs a bare base. Refuse instead.
    n_lora = sum(1 for name, _ in model.named_parameters() if "lora_" in name)
    if n_lora == 0:
        raise ModelLoadError(
            f"the adapter {tuned} put no adapter weights into {base!r} (trained on {recorded!r}). "
            "Fix: pass the base model the adapter was trained on."
        )


def read_labels(model_dir: str | Path) -> list[str] | None:
    """Class names of a saved classifier: ``labels.json``, else non-generic ``id2label``."""
    path = Path(model_dir)
    labels_file = path / "labels.json"
    if labels_file.is_file():
        value = _read_json(labels_file)
        names = value.get("labels") if isinstance(value, dict) else value
        if not isinstance(names, list) or len(names) < 2:
            raise ModelLoadError(
                f"{labels_file}: expected a list of at least two label names (or {{'labels': [...]}}), "
                f"got {str(value)[:80]}. Fix: rewrite it as e.g. [\"negative\", \"positive\"]."
            )
        return [str(n) for n in names]
    config = path / "config.json"
    if config.is_file():
        id2label = _read_json(config).get("id2label") or {}
        names = [str(id2label[k]) for k in sorted(id2label, key=int)]
        if len(names) >= 2 and not all(n == f"LABEL_{i}" for i, n in enumerate(names)):
            return names
    return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path} is not readable JSON: {exc}. Fix: re-save the model or adapter.") from exc
