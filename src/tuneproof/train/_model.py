"""Which parameters train: full, LoRA adapters, or the top blocks (freeze); plus model checks."""

from __future__ import annotations

from typing import Any

from tuneproof.config import ModelConfig
from tuneproof.errors import ConfigError

__all__ = ["apply_dropout", "check_max_length", "context_length", "prepare_model", "trainable_summary"]


def context_length(model: Any) -> int | None:
    """The longest input the model's positions allow, if its config says."""
    config = model.config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_max_length(model: Any, max_length: int, name: str) -> None:
    limit = context_length(model)
    if limit is not None and max_length > limit:
        raise ConfigError(
            "model.max_length",
            [
                f"model.max_length = {max_length}: longer than the context of {name!r} ({limit} tokens). "
                f"Fix: set model.max_length to at most {limit}."
            ],
        )


def apply_dropout(model: Any, p: float) -> None:
    """Set the attention and hidden dropout of every layer (and the config) to ``p``."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = p
    for key in ("attention_dropout", "hidden_dropout", "hidden_dropout_prob", "attention_probs_dropout_prob", "dropout"):
        if isinstance(getattr(model.config, key, None), float):
            setattr(model.config, key, p)


def _linear_names(model: Any) -> set[str]:
    import torch

    return {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}


def _blocks(model: Any) -> Any:
    """The transformer blocks: the longest ModuleList in the model."""
    import torch

    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    return max(lists, key=len) if lists else None


def prepare_model(model: Any, cfg: ModelConfig, task: str) -> Any:
    """Make only the parameters of ``cfg.method`` trainable; wrap LoRA with PEFT.

    - ``full``: every parameter;
    - ``lora``: the adapters on ``cfg.lora.target_modules`` (plus a classifier's new head);
    - ``freeze``: the top ``cfg.trainable_blocks`` blocks, the final norm and, for
      classification, the head. A causal LM's head stays frozen when it is tied to the
      input embeddings, because training it would also retrain the embeddings.

    Raises:
        ConfigError: LoRA target modules that the model doesn't have, or more trainable
            blocks than the model has.
    """
    if cfg.method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if cfg.method == "lora":
        return _lora(model, cfg, task)
    blocks = _blocks(model)
    if blocks is None or cfg.trainable_blocks > len(blocks):
        n = 0 if blocks is None else len(blocks)
        raise ConfigError(
            "model.trainable_blocks",
            [f"model.trainable_blocks = {cfg.trainable_blocks}: the model has {n} blocks. Fix: set it to 1..{n}, "
             "or use model.method: full."],
        )
    for p in model.parameters():
        p.requires_grad_(False)
    for block in list(blocks)[-cfg.trainable_blocks :]:
        for p in block.parameters():
            p.requires_grad_(True)
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    for name, module in model.named_children():
        # Heads and the final norm sit beside the block list; a classifier's new head must train.
        if name in ("classifier", "score", "pooler") or (name == "lm_head" and not tied):
            for p in module.parameters():
                p.requires_grad_(True)
    for name, p in model.named_parameters():
        if name.endswith(("norm.weight", "norm.bias")) and ".layers." not in name and ".layer." not in name:
            p.requires_grad_(True)
    return model


def _lora(model: Any, cfg: ModelConfig, task: str) -> Any:
    from peft import LoraConfig, TaskType, get_peft_model

    targets = cfg.lora.target_modules
    if targets != "all-linear":
        available = _linear_names(model)
        missing = [t for t in targets if t not in available]
        if missing:
            raise ConfigError(
                "model.lora.target_modules",
                [
                    f"model.lora.target_modules: {missing} not found among the model's linear layers. "
                    f"Fix: use some of {sorted(available)}, or all-linear."
                ],
            )
    peft_cfg = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.resolved_alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=targets,
        task_type=TaskType.CAUSAL_LM if task == "sft" else TaskType.SEQ_CLS,
    )
    return get_peft_model(model, peft_cfg)


def trainable_summary(model: Any) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"params_total": total, "params_trainable": trainable}
