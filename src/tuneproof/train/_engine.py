"""One training run: data -> split -> tokens -> model -> Trainer with our callbacks -> outputs."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tuneproof._io import atomic_write
from tuneproof.config import RunConfig, load_config
from tuneproof.errors import ConfigError, DataError

__all__ = ["DEFAULT_LR", "TrainResult", "resolve_bf16", "train"]

# Used when train.lr is unset and no sweep or search chose one. LoRA's best rate is about
# 10x that of full fine-tuning (PITFALLS: "LoRA Without Regret").
DEFAULT_LR = {"lora": 2e-4, "full": 2e-5, "freeze": 5e-5}


@dataclass
class TrainResult:
    """What one training produced.

    Attributes:
        output_dir: ``<run_dir>/train`` (or the ``output_dir`` given).
        model_dir: the trained model: a PEFT adapter (LoRA) or a full model, with its
            tokenizer (and ``labels.json`` for classification).
        merged_dir: the LoRA adapter merged into the base weights, when ``model.merge``.
        train_json: the summary file (the fields below, as JSON).
        final_metrics: validation metrics of the model that was saved (the best checkpoint
            when early stopping is on), from a last evaluation.
        best_metrics: the validation metrics of the best evaluation, by ``monitor``.
        best_step: the step of that evaluation.
        global_step: steps trained.
        stopped_early: early stopping ended the run before its step budget.
        guard: the overfitting guard's findings.
        mlflow_run_id: the MLflow run that holds params, per-step metrics and the config.
        split_path: ``split.json``: the record ids of each split.
        monitor: what ranked the evaluations: ``val_loss``, or for classification
            ``val_<metric>`` (ties broken by the lower ``record_loss``, the cross-entropy
            averaged over records); see ``train.early_stopping.monitor``.
        evals: every evaluation during training: its ``step`` and validation metrics.
    """

    output_dir: Path
    model_dir: Path
    train_json: Path
    final_metrics: dict[str, float]
    best_metrics: dict[str, float]
    best_step: int | None
    global_step: int
    stopped_early: bool
    guard: dict[str, Any]
    mlflow_run_id: str
    split_path: Path | None
    merged_dir: Path | None = None
    data: dict[str, Any] = field(default_factory=dict)
    monitor: str = "val_loss"
    evals: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, Path):
                out[key] = str(value)
        return out


def resolve_bf16(setting: bool | str, on_gpu: bool) -> bool:
    """Whether to train with bf16 autocast: ``auto`` turns it on where the hardware has it.

    Raises:
        ConfigError: ``train.bf16: true`` on hardware without bf16 support.
    """
    import torch

    if setting is False:
        return False
    if on_gpu:
        supported = torch.cuda.is_bf16_supported()
    else:
        try:
            supported = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            supported = False
    if setting is True and not supported:
        raise ConfigError(
            "train.bf16",
            ["train.bf16 = true: this machine has no native bf16 support (emulated bf16 is slower "
             "than fp32). Fix: set train.bf16: auto or false. Never use fp16 on a CPU."],
        )
    return supported


def _as_config(config: RunConfig | str | os.PathLike | dict, overrides: Sequence[str] | None) -> RunConfig:
    if isinstance(config, RunConfig):
        if overrides:
            return load_config(config.model_dump(mode="json"), list(overrides))
        return config
    return load_config(config, list(overrides or []))


def train(
    config: RunConfig | str | os.PathLike | dict,
    *,
    overrides: Sequence[str] | None = None,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
    parent_run_id: str | None = None,
    output_dir: str | os.PathLike | None = None,
    run_name: str | None = None,
    console: Any = None,
    lr_source: str | None = None,
) -> TrainResult:
    """Train one model from a run config and write it, with ``train.json``, under the run dir.

    This is also the unit that the learning-rate sweep and the hyperparameter search
    repeat: pass ``overrides`` (e.g. ``["train.lr=1e-4"]``), extra Trainer ``callbacks``
    (e.g. an Optuna pruning callback: it sees ``eval_loss`` in ``on_evaluate``), a
    ``parent_run_id`` to nest the MLflow run, and an ``output_dir`` per trial.

    Args:
        config: a :class:`RunConfig`, a YAML path or a mapping.
        overrides: dotted ``key=value`` overrides applied on top of ``config``.
        resume: continue from the last checkpoint in ``<output_dir>/checkpoints``, in the
            same MLflow run.
        callbacks: extra ``transformers.TrainerCallback`` objects.
        parent_run_id: make the MLflow run a child of this run.
        output_dir: where to write; default ``<run_dir>/train``.
        run_name: the MLflow run name; default ``<name>/train``.
        console: a rich console for progress and warnings; default stderr.
        lr_source: where ``train.lr`` came from when a caller chose it (e.g. ``"lr sweep"``),
            recorded in ``train.json``; default ``"config"``, or ``"default"`` when the
            config sets no rate.

    Returns:
        A :class:`TrainResult`.

    Raises:
        ConfigError: a config that can't work (LoRA targets the model lacks, max_length
            past the model's context, bf16 forced on hardware without it...), before training.
        DataError: unreadable data, labels missing from ``model.labels``, an empty
            validation split.
        ModelLoadError: the model can't be loaded.

    Example:
        >>> result = train("examples/sentiment.yaml", overrides=["train.max_steps=20"])  # doctest: +SKIP
        >>> result.best_step, result.guard["overfitting"]  # doctest: +SKIP
        (20, False)
    """
    from rich.console import Console

    cfg = _as_config(config, overrides)
    console = console or Console(stderr=True)
    out = Path(output_dir) if output_dir is not None else cfg.run_dir / "train"
    out.mkdir(parents=True, exist_ok=True)
    prepared = _prepare(cfg, out, console)
    if lr_source and cfg.train.lr:
        prepared.lr_source = lr_source
    return _fit(cfg, prepared, out, resume, list(callbacks), parent_run_id, run_name, console)


@dataclass
class _Prepared:
    model: Any
    tokenizer: Any
    train_set: Any
    val_set: Any
    collator: Any
    loss_func: Any
    labels: list[str] | None
    split_path: Path | None
    data: dict[str, Any]
    bf16: bool
    on_gpu: bool
    lr: float
    lr_source: str


def _prepare(cfg: RunConfig, out: Path, console: Any) -> _Prepared:
    """Everything that can fail on bad input, done before the first training step."""
    import torch

    from tuneproof.data import load_records
    from tuneproof.models import load_model
    from tuneproof.train import _batching, _model, classification, sft
    from tuneproof.train._split import split_records

    on_gpu = torch.cuda.is_available()
    bf16 = resolve_bf16(cfg.train.bf16, on_gpu)

    loaded = load_records(cfg.data.path, fields=cfg.data.fields, split=cfg.data.split, rejects_path=out / "rejects.jsonl")
    if loaded.rejected:
        console.print(f"[yellow]{loaded.summary()}; rejected rows are in {out / 'rejects.jsonl'}[/yellow]")
    if cfg.data.eval_path:
        val_loaded = load_records(cfg.data.eval_path, fields=cfg.data.fields, rejects_path=out / "rejects_eval.jsonl")
        train_records, val_records, split_path = loaded.records, val_loaded.records, None
    else:
        split = split_records(
            loaded.records,
            val_fraction=cfg.data.val_fraction,
            test_fraction=cfg.data.test_fraction,
            seed=cfg.train.seed,
            stratify=cfg.task == "classification",
        )
        split_path = split.write(out)
        train_records, val_records = split.train, split.val
    if not val_records:
        raise DataError(
            f"{cfg.data.eval_path or cfg.data.path}: the validation split is empty "
            f"({len(loaded.records)} records, val_fraction={cfg.data.val_fraction}), so early stopping and the "
            "overfitting guard have nothing to watch. Fix: add records, raise data.val_fraction, or give "
            "data.eval_path."
        )
    if not train_records:
        raise DataError(f"{cfg.data.path}: no records left for training after the split. Fix: add records.")

    labels = None
    if cfg.task == "classification":
        labels = classification.label_map(train_records, cfg.model.labels)
        classification.label_map(val_records, labels)  # val labels must be known too
        if cfg.monitors_metric and cfg.primary_metric == "auroc" and len(labels) != 2:
            raise ConfigError(
                "train.early_stopping.monitor",
                [f"eval.metric = 'auroc' is defined for 2 classes, and the data has {len(labels)} "
                 f"({', '.join(labels[:6])}{', ...' if len(labels) > 6 else ''}), so it cannot pick "
                 "checkpoints. Fix: set eval.metric to accuracy or macro_f1, or "
                 "train.early_stopping.monitor: val_loss."],
            )  # fmt: skip
    model, tokenizer = load_model(
        cfg.model.name, cfg.task, labels=labels, seed=cfg.train.seed, trust_remote_code=cfg.model.trust_remote_code
    )
    _model.check_max_length(model, cfg.model.max_length, cfg.model.name)

    label2id = {name: i for i, name in enumerate(labels or [])}

    def encode(records: list[Any]) -> tuple[list[dict[str, Any]], int, int]:
        feats, truncated, empty = [], 0, 0
        for r in records:
            if cfg.task == "sft":
                f, cut = sft.encode_sft(r, tokenizer, cfg.model.max_length)
                if all(x == sft.IGNORE for x in f["labels"]):
                    empty += 1  # the completion was cut away entirely: nothing to learn
                    continue
            else:
                f, cut = classification.encode_classification(r, tokenizer, cfg.model.max_length, label2id)
            truncated += cut
            feats.append(f)
        return feats, truncated, empty

    train_feats, train_cut, train_empty = encode(train_records)
    val_feats, val_cut, val_empty = encode(val_records)
    if train_empty or val_empty:
        console.print(
            f"[yellow]skipped {train_empty + val_empty} record(s) whose completion lies past model.max_length="
            f"{cfg.model.max_length} tokens (nothing left to learn). Fix: raise model.max_length.[/yellow]"
        )
    if not val_feats or not train_feats:
        raise DataError(
            f"after tokenization, the {'validation' if not val_feats else 'training'} split is empty (every "
            f"completion is past model.max_length={cfg.model.max_length}). Fix: raise model.max_length."
        )

    if cfg.train.dropout is not None:
        _model.apply_dropout(model, cfg.train.dropout)
    # Seed before PEFT draws the adapters' initial weights: Trainer seeds only after the
    # model exists, so without this two runs with the same seed start from different adapters.
    from transformers import set_seed

    set_seed(cfg.train.seed)
    model = _model.prepare_model(model, cfg.model, cfg.task)

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    lengths = [len(f["input_ids"]) for f in train_feats]
    batches = _batching.length_grouped_batches(lengths, batch_size=cfg.train.batch_size, max_tokens=cfg.train.max_batch_tokens)
    val_lengths = [len(f["input_ids"]) for f in val_feats]
    val_batches = _batching.length_grouped_batches(val_lengths, batch_size=cfg.train.batch_size, max_tokens=cfg.train.max_batch_tokens)
    collator = sft.SftCollator(pad_id) if cfg.task == "sft" else classification.ClassificationCollator(pad_id)

    lr, lr_source = (cfg.train.lr, "config") if cfg.train.lr else (DEFAULT_LR[cfg.model.method], "default")
    data = {
        "train_records": len(train_feats),
        "val_records": len(val_feats),
        "rejected_rows": len(loaded.rejected),
        "truncated": train_cut + val_cut,
        "skipped_past_max_length": train_empty + val_empty,
        "train_batches": len(batches),
        **{f"train_{k}": v for k, v in _batching.padding_stats(lengths, batches).items()},
        **{f"val_{k}": v for k, v in _batching.padding_stats(val_lengths, val_batches).items()},
    }
    return _Prepared(
        model=model,
        tokenizer=tokenizer,
        train_set=_batching.BatchedDataset(train_feats, batches),
        val_set=_batching.BatchedDataset(val_feats, val_batches),
        collator=collator,
        loss_func=_batching.UnitWeightedLoss(
            sft.completion_loss, sft.completion_tokens, _eval_tokens_per_batch(val_feats, val_batches), model
        )
        if cfg.task == "sft"
        else _batching.UnitWeightedLoss(
            classification.record_loss, classification.record_count, len(val_feats) / max(1, len(val_batches)), model
        ),
        labels=labels,
        split_path=split_path,
        data=data,
        bf16=bf16,
        on_gpu=on_gpu,
        lr=lr,
        lr_source=lr_source,
    )


def _eval_tokens_per_batch(feats: list[dict[str, Any]], batches: list[list[int]]) -> float:
    """Mean completion tokens per validation batch, counted by the rule the loss uses."""
    import torch

    from tuneproof.train.sft import completion_tokens

    tokens = sum(completion_tokens(torch.tensor([f["labels"]])) for f in feats)
    return tokens / max(1, len(batches))


def _training_args(cfg: RunConfig, p: _Prepared, out: Path) -> Any:
    from transformers import TrainingArguments

    t = cfg.train
    steps_per_epoch = max(1, math.ceil(len(p.train_set) / t.grad_accum))
    total = t.max_steps or max(1, math.ceil(steps_per_epoch * t.epochs))
    eval_steps = t.eval_steps or max(1, total // 10)
    early = t.early_stopping.enabled
    return TrainingArguments(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=1,  # each dataset item is a whole length-grouped batch
        per_device_eval_batch_size=1,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=p.lr,
        lr_scheduler_type=t.scheduler,
        warmup_steps=t.warmup_ratio,  # a float in [0, 1) is a share of the steps
        num_train_epochs=t.epochs,
        max_steps=t.max_steps or -1,
        weight_decay=t.weight_decay,
        seed=t.seed,
        data_seed=t.seed,
        bf16=p.bf16,
        use_cpu=not p.on_gpu,
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=2,
        load_best_model_at_end=early,
        metric_for_best_model="eval_selection" if cfg.monitors_metric else "eval_loss",
        greater_is_better=cfg.monitors_metric,
        restore_callback_states_from_checkpoint=True,
        logging_steps=1,
        report_to=[],
        disable_tqdm=True,
        dataloader_pin_memory=False,
        remove_unused_columns=False,
        prediction_loss_only=cfg.task == "sft",
        # Our loss functions divide by the units they score themselves (UnitWeightedLoss); with
        # the default True, Trainer would also multiply each evaluation loss by the number of
        # processes, and torchrun's val_loss came out twice a single process's.
        average_tokens_across_devices=False,
        log_level="warning",
    )


def one_gpu_per_process(args: Any, console: Any) -> None:
    """Train on one GPU when one process sees several, and say how to use them all.

    Outside torchrun/accelerate, Trainer wraps a model in ``DataParallel`` when it sees
    several GPUs and gives each step one dataset item per GPU. Our items are whole
    length-grouped batches, which ``DataParallel`` cannot split, so the run keeps to
    ``cuda:0`` (as Trainer itself does for a model-parallel model).

    Example:
        >>> from types import SimpleNamespace
        >>> from rich.console import Console
        >>> args = SimpleNamespace(n_gpu=4, _n_gpu=4)
        >>> one_gpu_per_process(args, Console(width=200))
        4 GPUs visible to one process: training uses cuda:0 only. To train on all 4, launch with torchrun --nproc_per_node 4 -m tuneproof.cli ... (or accelerate launch).
        >>> args._n_gpu
        1
    """
    if args.n_gpu > 1:
        console.print(
            f"[yellow]{args.n_gpu} GPUs visible to one process: training uses cuda:0 only. To train on all "
            f"{args.n_gpu}, launch with torchrun --nproc_per_node {args.n_gpu} -m tuneproof.cli ... "
            "(or accelerate launch).[/yellow]",
            highlight=False,
        )
        args._n_gpu = 1


def _fit(
    cfg: RunConfig,
    p: _Prepared,
    out: Path,
    resume: bool,
    extra_callbacks: list[Any],
    parent_run_id: str | None,
    run_name: str | None,
    console: Any,
) -> TrainResult:
    from transformers import EarlyStoppingCallback, PrinterCallback, Trainer
    from transformers.trainer_utils import get_last_checkpoint

    from tuneproof import track
    from tuneproof.train import _model, classification
    from tuneproof.train._callbacks import MlflowLogger, RichProgress
    from tuneproof.train._guard import OverfitGuard

    args = _training_args(cfg, p, out)
    one_gpu_per_process(args, console)
    checkpoint = None
    if resume:
        ckpt_dir = out / "checkpoints"
        checkpoint = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
        if checkpoint is None:
            raise ConfigError(
                "--resume", [f"--resume: no checkpoint in {ckpt_dir}. Fix: run without --resume to start afresh."]
            )
    run_id_file = out / "mlflow_run_id"
    reopen = run_id_file.read_text().strip() if resume and run_id_file.is_file() else None

    with track.start_run(
        cfg.tracking, run_name or f"{cfg.name}/train", parent_run_id=parent_run_id, run_id=reopen,
        tags={"tuneproof.stage": "train", "tuneproof.task": cfg.task, "tuneproof.method": cfg.model.method},
    ) as run:  # fmt: skip
        run_id_file.write_text(run.run_id)
        if reopen is None:
            track.log_params(run, _flat_params(cfg, p))
            track.log_text(run, cfg.to_yaml(), "config.yaml")

        def on_fire(findings: Any) -> None:
            track.set_tags(run, {"overfit_guard": "overfitting", "overfit_guard.step": findings.detected_step})

        guard = OverfitGuard(
            cfg.train.overfit_guard.patience,
            cfg.train.overfit_guard.max_gap_increase,
            warn=lambda msg: console.print(f"[yellow]overfit guard: {msg}[/yellow]"),
            on_fire=on_fire,
        )
        callbacks: list[Any] = [MlflowLogger(run), RichProgress(console, f"train {cfg.name}")]
        if cfg.train.overfit_guard.enabled:
            callbacks.append(guard)
        early = None
        if cfg.train.early_stopping.enabled:
            early = EarlyStoppingCallback(cfg.train.early_stopping.patience, patience_threshold(cfg))
            callbacks.append(early)
        trainer = Trainer(
            model=p.model,
            args=args,
            train_dataset=p.train_set,
            eval_dataset=p.val_set,
            data_collator=p.collator,
            compute_loss_func=p.loss_func,
            compute_metrics=classification.SelectionMetrics(cfg.primary_metric if cfg.monitors_metric else None)
            if cfg.task == "classification"
            else None,
            callbacks=callbacks + extra_callbacks,
        )
        trainer.remove_callback(PrinterCallback)  # our progress bar and MLflow replace its dict dumps
        start = time.perf_counter()
        output = trainer.train(resume_from_checkpoint=checkpoint)
        elapsed = time.perf_counter() - start
        evals = [e for e in trainer.state.log_history if "eval_loss" in e]  # before the last evaluate() adds one
        # Evaluate the model we keep (the best checkpoint when early stopping restored it).
        final = {k.removeprefix("eval_"): float(v) for k, v in trainer.evaluate().items() if _is_metric(k, v)}

        state = trainer.state
        if cfg.monitors_metric:  # the first of equal scores, as the Trainer keeps it
            best_entry = max(evals, key=lambda e: e.get("eval_selection", -math.inf)) if evals else {}
            monitor = f"val_{cfg.primary_metric}"
        else:
            best_entry = min(evals, key=lambda e: e["eval_loss"]) if evals else {}
            monitor = "val_loss"
        best = {k.removeprefix("eval_"): float(v) for k, v in best_entry.items() if _is_metric(k, v)}
        guard_findings = guard.findings
        if cfg.train.overfit_guard.enabled:
            if not guard_findings.overfitting:
                track.set_tags(run, {"overfit_guard": "clean"})
        else:
            track.set_tags(run, {"overfit_guard": "disabled"})
        stopped_early = stopped_before_budget(early, state)

        model_dir = out / "model"
        trainer.save_model(str(model_dir))
        p.tokenizer.save_pretrained(str(model_dir))
        # Trainer pickles its arguments beside the model; our outputs are safetensors and JSON only.
        (model_dir / "training_args.bin").unlink(missing_ok=True)
        if p.labels is not None:
            (model_dir / "labels.json").write_text(json.dumps(p.labels, indent=1))
        merged_dir = None
        if cfg.model.merge and cfg.model.method == "lora":
            merged_dir = out / "merged"
            trainer.model.merge_and_unload().save_pretrained(str(merged_dir), safe_serialization=True)
            p.tokenizer.save_pretrained(str(merged_dir))
            if p.labels is not None:
                (merged_dir / "labels.json").write_text(json.dumps(p.labels, indent=1))

        # Approximate (epochs done x tokens per epoch); the benchmark counts exactly.
        tokens = p.data["train_tokens"] * float(state.epoch or 0)
        result = TrainResult(
            output_dir=out,
            model_dir=model_dir,
            merged_dir=merged_dir,
            train_json=out / "train.json",
            final_metrics=final,
            best_metrics=best,
            best_step=int(best_entry["step"]) if best_entry else None,
            global_step=state.global_step,
            stopped_early=stopped_early,
            guard=guard_findings.to_dict(),
            mlflow_run_id=run.run_id,
            monitor=monitor,
            evals=[{"step": int(e["step"]), **{k.removeprefix("eval_"): float(v) for k, v in e.items() if _is_metric(k, v)}}
                   for e in evals],  # fmt: skip
            split_path=p.split_path,
            data={
                **p.data,
                **_model.trainable_summary(trainer.model),
                "lr": p.lr,
                "lr_source": p.lr_source,
                "bf16": p.bf16,
                "train_seconds": round(elapsed, 2),
                "train_loss_mean": float(output.training_loss),
                "approx_tokens_per_second": round(tokens / elapsed, 1) if elapsed > 0 else None,
            },
        )
        atomic_write(result.train_json, json.dumps(result.to_dict(), indent=1))
        track.log_metrics(run, {f"final_{k}": v for k, v in final.items()}, step=state.global_step)
        track.set_tags(run, {"best_step": result.best_step, "stopped_early": stopped_early})
        track.log_artifact(run, result.train_json)
    console.print(f"trained {state.global_step} steps in {elapsed:.0f} s; {describe_best(result)}; model in {model_dir}")
    return result


def patience_threshold(cfg: RunConfig) -> float:
    """The least improvement of the monitored score that resets early stopping's patience.

    ``min_delta``; when a classification metric is monitored, at least the largest loss
    tie-break (:data:`classification.TIE_BREAK` x ``LOSS_CAP``). A lower loss at an equal
    metric still makes that evaluation the best checkpoint, but patience runs out when the
    metric itself stops improving: on a small validation split (spam: 40 records) the metric
    often plateaus while the loss moves by 1e-4, and each such move would buy more steps.
    """
    from tuneproof.train import classification

    min_delta = cfg.train.early_stopping.min_delta
    return max(min_delta, classification.TIE_BREAK * classification.LOSS_CAP) if cfg.monitors_metric else min_delta


def describe_best(result: TrainResult) -> str:
    """The best evaluation in words: its score by ``monitor`` and its step.

    Example:
        >>> from types import SimpleNamespace
        >>> r = SimpleNamespace(monitor="val_accuracy", best_metrics={"accuracy": 0.736, "loss": 0.6549}, best_step=322)
        >>> describe_best(r)
        'best val accuracy 0.7360 (val loss 0.6549) at step 322'
    """
    m = result.best_metrics
    if result.monitor == "val_loss":
        return f"best val loss {m.get('loss', float('nan')):.4f} at step {result.best_step}"
    name = result.monitor.removeprefix("val_")
    return (f"best val {name} {m.get(name, float('nan')):.4f} (val loss {m.get('loss', float('nan')):.4f}) "
            f"at step {result.best_step}")  # fmt: skip


def stopped_before_budget(early: Any, state: Any) -> bool:
    """Whether early stopping ended the run before its step budget.

    The patience can run out at the very last step (the best evaluation three before the
    end): the run then did every planned step, and saying "stopped early" would tell the
    reader, and the decision's causes, that the budget was not the limit.
    """
    if early is None or early.early_stopping_patience_counter < early.early_stopping_patience:
        return False
    return bool(state.max_steps) and state.global_step < state.max_steps


def _is_metric(key: str, value: Any) -> bool:
    # eval_selection (the checkpoint score, classification.SelectionMetrics) is the metric
    # itself less a tie-break of at most 1e-5; MLflow keeps it, train.json shows the metrics.
    return (
        key.startswith("eval_")
        and key != "eval_selection"
        and isinstance(value, (int, float))
        and not key.endswith(("runtime", "per_second"))
    )


def _flat_params(cfg: RunConfig, p: _Prepared) -> dict[str, Any]:
    flat: dict[str, Any] = {"task": cfg.task, "lr_used": p.lr, "lr_source": p.lr_source, "bf16_used": p.bf16}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            flat[prefix] = value

    for section in ("data", "model", "train"):
        walk(section, getattr(cfg, section).model_dump(mode="json"))
    for k, v in p.data.items():
        flat[f"data_stats.{k}"] = v
    return flat
