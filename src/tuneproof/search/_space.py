"""The search space: defaults per task and method, the sweep's lr range, and config overrides."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tuneproof.config import ParamRange, RunConfig, load_config
from tuneproof.errors import ConfigError

__all__ = ["DEFAULT_LR_RANGE", "PARAM_TARGETS", "SearchSpace", "apply_params", "baseline_params", "default_space", "resolve_space",
           "suggest"]

# Where each searchable name lands in the run config.
PARAM_TARGETS = {
    "lr": "train.lr",
    "weight_decay": "train.weight_decay",
    "dropout": "train.dropout",
    "warmup_ratio": "train.warmup_ratio",
    "batch_size": "train.batch_size",
    "epochs": "train.epochs",
    "lora_r": "model.lora.r",
    "lora_alpha": "model.lora.alpha",
}
_INT_PARAMS = {"batch_size", "lora_r", "lora_alpha"}

# LoRA's best rate is about 10x full fine-tuning's; LoRA sweeps roughly 1e-5..5e-4 (PITFALLS).
DEFAULT_LR_RANGE = {"lora": (1e-5, 5e-4), "full": (3e-6, 1e-4), "freeze": (1e-5, 3e-4)}

SearchSpace = dict[str, ParamRange]


def default_space(cfg: RunConfig) -> SearchSpace:
    """The default space for the config's task and method (before the sweep and overrides)."""
    low, high = DEFAULT_LR_RANGE[cfg.model.method]
    space: SearchSpace = {
        "lr": ParamRange(low=low, high=high, log=True),
        "weight_decay": ParamRange(low=0.0, high=0.1),
        "dropout": ParamRange(low=0.0, high=0.2),
        "warmup_ratio": ParamRange(low=0.0, high=0.1),
        "batch_size": ParamRange(choices=sorted({max(1, cfg.train.batch_size // 2), cfg.train.batch_size, cfg.train.batch_size * 2})),
    }
    # Epochs: capped at the config's epochs; early stopping ends a trial sooner. A max_steps
    # budget makes epochs irrelevant, so it is not searched then.
    cap = min(5, math.ceil(cfg.train.epochs))
    if cfg.train.max_steps is None and cap > 1:
        space["epochs"] = ParamRange(choices=list(range(1, cap + 1)))
    if cfg.model.method == "lora":
        space["lora_r"] = ParamRange(choices=[8, 16, 32])
        space["lora_alpha"] = ParamRange(choices=[16, 32, 64])  # alpha = 2r sits in the middle
    return space


def _sweep_range(run_dir: Path) -> tuple[ParamRange, float | None, Path] | None:
    """The sweep's recommended lr range, its rate for the training (None in an older file) and the file.

    The rate is ``train_lr``, the best short-run rate corrected for the training's length
    (:func:`tuneproof.search.training_lr`); a file from before that correction gives ``best_lr``.
    """
    path = run_dir / "lr_sweep" / "lr_sweep.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        rec = data["recommended"]
        rate = data.get("train_lr", data.get("best_lr"))
        best = float(rate) if rate is not None else None
        return ParamRange(low=float(rec["low"]), high=float(rec["high"]), log=True), best, path
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise ConfigError(
            str(path), [f"{path}: unreadable lr sweep result ({exc}). Fix: rerun `tuneproof lr-sweep` or delete the file."]
        ) from exc


def resolve_space(cfg: RunConfig) -> tuple[SearchSpace, dict[str, str]]:
    """The effective space and where each dimension came from (default, lr_sweep.json, config).

    Every bound and choice is checked against the run config's own rules, so a range that
    no training could accept (e.g. ``weight_decay`` up to 2) fails here, before any trial.

    Raises:
        ConfigError: a value of the space that the run config rejects, or lora_* with a non-LoRA method.
    """
    space = default_space(cfg)
    origin = dict.fromkeys(space, "default")
    swept = _sweep_range(cfg.run_dir)
    if swept is not None:
        space["lr"], _, path = swept
        origin["lr"] = f"lr sweep ({path})"
    for name, rng in cfg.search.space.items():
        space[name] = rng
        origin[name] = "config search.space"
    if cfg.model.method != "lora":
        bad = [k for k in space if k.startswith("lora_")]
        if bad:
            raise ConfigError(
                "search.space",
                [f"search.space: {bad} only apply to model.method=lora, but the method is {cfg.model.method!r}. "
                 "Fix: remove them or set model.method: lora."],
            )  # fmt: skip
    _check_values(cfg, space)
    return space, origin


def _check_values(cfg: RunConfig, space: SearchSpace) -> None:
    problems = []
    base = cfg.model_dump(mode="json")
    for name, rng in space.items():
        values = rng.choices if rng.choices is not None else [rng.low, rng.high]
        for value in values:
            if name in _INT_PARAMS and (not isinstance(value, (int, float)) or int(value) != value):
                problems.append(f"search.space.{name}: {value!r} is not a whole number")
                continue
            try:
                load_config(apply_params(base, {name: value}))
            except ConfigError as exc:
                why = "; ".join(exc.problems)
                problems.append(f"search.space.{name}: the value {value!r} is not a valid {PARAM_TARGETS[name]} ({why})")
    if problems:
        raise ConfigError("search.space", problems + ["Fix: narrow the range to values a training accepts."])


def _cast(name: str, value: Any) -> Any:
    return int(value) if name in _INT_PARAMS else value


def suggest(trial: Any, space: SearchSpace) -> dict[str, Any]:
    """Draw one value per dimension from an Optuna trial."""
    params: dict[str, Any] = {}
    for name, rng in space.items():
        if rng.choices is not None:
            params[name] = trial.suggest_categorical(name, rng.choices)
        elif name in _INT_PARAMS:
            params[name] = trial.suggest_int(name, int(rng.low), int(rng.high), log=rng.log)
        else:
            params[name] = trial.suggest_float(name, float(rng.low), float(rng.high), log=rng.log)
    return params


def apply_params(config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A copy of a config mapping with the params set at their targets (``lr`` -> ``train.lr``)."""
    import copy

    out = copy.deepcopy(config)
    for name, value in params.items():
        *parents, leaf = PARAM_TARGETS[name].split(".")
        node = out
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = _cast(name, value)
    return out


def baseline_params(cfg: RunConfig, space: SearchSpace) -> dict[str, Any]:
    """The known-good starting point: the sweep's rate for the training and the config's own values.

    ``tune`` runs it as its first trial, so that a short search (whose first trials are
    random draws) always has the measured sweep winner to beat. A dimension whose config
    value lies outside the space is left out (Optuna draws it).
    """
    base = cfg.model_dump(mode="json")
    values: dict[str, Any] = {}
    for name in space:
        node: Any = base
        for key in PARAM_TARGETS[name].split("."):
            node = node.get(key) if isinstance(node, dict) else None
        values[name] = node
    swept = _sweep_range(cfg.run_dir) if "lr" in space else None
    if swept is not None and swept[1] is not None:
        values["lr"] = swept[1]
    if "epochs" in values and isinstance(values["epochs"], (int, float)):
        values["epochs"] = math.ceil(values["epochs"])
    out = {}
    for name, value in values.items():
        rng = space[name]
        if rng.choices is not None:
            if value in rng.choices:
                out[name] = value
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and rng.low <= value <= rng.high:
            out[name] = _cast(name, value)
    return out
