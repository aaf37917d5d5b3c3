"""``tuneproof run``: the stage graph, each stage skipped when its inputs and config slice are unchanged."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from tuneproof._io import atomic_open, atomic_write, remove_temporaries
from tuneproof._lock import run_dir_lock
from tuneproof.config import RunConfig, load_config
from tuneproof.errors import TuneproofError
from tuneproof.pipeline._budget import Plan
from tuneproof.pipeline._budget import plan as budget_plan
from tuneproof.pipeline._decision import decide
from tuneproof.pipeline._inputs import check_curated, check_inputs, check_split
from tuneproof.pipeline._preflight import min_effect, preflight
from tuneproof.pipeline._state import code_hash, hash_config, hash_inputs, read_ledger, sha256_file, write_ledger


@dataclass
class Ctx:
    cfg: RunConfig
    console: Any
    parent_run_id: str | None = None
    ledger: dict[str, Any] = field(default_factory=dict)
    new_study: bool = True
    note: str | None = None  # what a stage that did not need to work says in the ledger (e.g. why it skipped)
    audited: Any = None  # the audit stage's AuditResult, which the curate stage acts on

    @property
    def run_dir(self) -> Path:
        return self.cfg.run_dir

    def dir(self, stage: str) -> Path:
        return self.run_dir / stage

    def staged(self, train: Path | None = None) -> RunConfig:
        """The config the training stages use: the split's train/val files, so the engine doesn't re-split.

        ``train`` replaces the split's training file (the raw data, when the curation A/B reverted curation).
        """
        raw = self.cfg.model_dump(mode="json")
        split = self.dir("split")
        raw["data"].update(path=str(train or split / "train.jsonl"), eval_path=str(split / "val.jsonl"), fields={}, split=None)
        return load_config(raw)


@dataclass
class Stage:
    """One step: what it reads (files), which config it depends on, and the work."""

    name: str
    inputs: Callable[[Ctx], list[Path]]
    config: Callable[[RunConfig], Any]
    work: Callable[[Ctx], list[Path]]  # returns the files/folders it wrote


@dataclass
class RunResult:
    """What a pipeline run did: the run folder, each stage's record and the decision."""

    run_dir: Path
    stages: list[dict[str, Any]]
    decision: dict[str, Any] | None
    report: Path | None = None

    @property
    def shipped(self) -> bool:
        return bool(self.decision and self.decision["ship"])


# ---- the stages -------------------------------------------------------------------------


def _source_files(ctx: Ctx) -> list[Path]:
    d = ctx.cfg.data
    return [Path(p) for p in (d.path, d.eval_path, d.domain) if p]


def _data_slice(cfg: RunConfig) -> dict[str, Any]:
    return {"task": cfg.task, "data": cfg.data.model_dump(mode="json"), "model": cfg.model.name,
            "max_length": cfg.model.max_length, "audit": cfg.audit.model_dump(mode="json")}  # fmt: skip


def _audit_kwargs(cfg: RunConfig) -> dict[str, Any]:
    d = cfg.data
    return {"domain": d.domain, "domain_text": d.domain_text, "eval_data": d.eval_path, "model": cfg.model.name,
            "task": cfg.task, "fields": d.fields or None, "config": cfg.audit_for_run}  # fmt: skip


def run_audit(ctx: Ctx) -> list[Path]:
    from tuneproof.audit import audit

    out = ctx.dir("audit")
    # Kept for the curate stage that follows, so the data is audited once per run.
    ctx.audited = audit(ctx.cfg.data.path, out=out, **_audit_kwargs(ctx.cfg))
    return [out / "findings.jsonl", out / "audit.json"]


def run_curate(ctx: Ctx) -> list[Path]:
    from tuneproof.audit import curate

    out = ctx.dir("curate")
    # The audit stage's result when it ran in this process; after a resume that skipped it, curate audits.
    res = curate(ctx.cfg.data.path, out=out, audited=ctx.audited, **_audit_kwargs(ctx.cfg))
    c = res.manifest["counts"]
    ctx.console.print(f"  curate: kept {c['kept']}, removed {c['removed']} {c['removed_by_check']}, unreadable {c['unreadable']}",
                      highlight=False)  # fmt: skip
    return [out / n for n in ("kept.jsonl", "removed.jsonl", "unreadable.jsonl", "manifest.json")]


def _split_source(ctx: Ctx) -> Path:
    kept = ctx.dir("curate") / "kept.jsonl"
    return kept if ctx.cfg.pipeline.stages["curate"] and kept.exists() else Path(ctx.cfg.data.path)


def run_split(ctx: Ctx) -> list[Path]:
    from tuneproof.data import load_records
    from tuneproof.train import split_records

    cfg, out = ctx.cfg, ctx.dir("split")
    out.mkdir(parents=True, exist_ok=True)
    if _split_source(ctx) == ctx.dir("curate") / "kept.jsonl":
        check_curated(ctx.dir("curate"))
    loaded = load_records(_split_source(ctx), fields=cfg.data.fields or None, split=cfg.data.split,
                          rejects_path=out / "rejects.jsonl")  # fmt: skip
    stratified = cfg.task == "classification"
    # A given eval file is the test set as it stands (the user's held-out data: not curated, not
    # cut); the data file then only gives train and val.
    external = Path(cfg.data.eval_path) if cfg.data.eval_path else None
    s = split_records(loaded.records, val_fraction=cfg.data.val_fraction,
                      test_fraction=0.0 if external else cfg.data.test_fraction,
                      seed=cfg.train.seed, stratify=stratified)  # fmt: skip
    if external:
        s.test = load_records(external, fields=cfg.data.fields or None, rejects_path=out / "rejects_test.jsonl").records
        if not s.test:
            raise TuneproofError(f"{external}: data.eval_path holds no readable record (see {out / 'rejects_test.jsonl'}); "
                                 "fix the file or unset data.eval_path to cut the test split from data.path")  # fmt: skip
    check_split({p: len(getattr(s, p)) for p in ("train", "val", "test")}, s.train, s.test, task=cfg.task,
                source=_split_source(ctx), curate_dir=ctx.dir("curate") if cfg.pipeline.stages["curate"] else None,
                test_name=str(external) if external else "the test split")
    for part in ("train", "val", "test"):
        with atomic_open(out / f"{part}.jsonl") as f:
            for r in getattr(s, part):
                f.write(json.dumps({"id": r.id, **r.fields, **r.extra}, ensure_ascii=False, default=str) + "\n")
    counts = {p: len(getattr(s, p)) for p in ("train", "val", "test")}
    info = {"counts": counts, "stratified": stratified, "seed": cfg.train.seed, "source": str(_split_source(ctx)),
            "test_source": str(external) if external else "cut from the source with data.test_fraction",
            "clusters_kept_together": "records with the same normalized input text, and near duplicates (MinHash, "
            "verified Jaccard; connected components), form one group that never straddles two splits; see method",
            "method": s.method, "ids": s.ids()}  # fmt: skip
    atomic_write(out / "split.json", json.dumps(info, indent=1))
    ctx.console.print(f"  split: {counts}", highlight=False)
    return [out / f"{p}.jsonl" for p in ("train", "val", "test")] + [out / "split.json"]


def _eval_bf16(cfg: RunConfig) -> bool:
    """Scoring follows train.bf16 on the device it runs on (the GPU when there is one)."""
    from tuneproof.models import inference_device
    from tuneproof.train import resolve_bf16

    return resolve_bf16(cfg.train.bf16, on_gpu=inference_device().type == "cuda")


def run_baseline(ctx: Ctx) -> list[Path]:
    """The reference on the test split before any training, as the evaluation scores it: the
    base model zero-shot (SFT), or the linear probe on its frozen embeddings (classification)."""
    from tuneproof.evaluate._baseline import score_baseline, score_probe_baseline

    cfg, out, split = ctx.cfg, ctx.dir("baseline"), ctx.dir("split")
    if cfg.task == "classification":
        info = score_probe_baseline(cfg.model.name, split / "train.jsonl", split / "test.jsonl", out, labels=cfg.model.labels,
                                    config=cfg.eval, seed=cfg.train.seed, max_length=cfg.model.max_length,
                                    console=ctx.console)  # fmt: skip
        ctx.console.print(f"  baseline: the linear probe on the base model's embeddings scores accuracy {info['mean']:.4g} "
                          f"on {info['n']} test records, before training", highlight=False)  # fmt: skip
        return [out / "records.jsonl", out / "baseline.json"]
    info = score_baseline(cfg.model.name, split / "test.jsonl", out, config=cfg.eval, seed=cfg.train.seed,
                          max_length=cfg.model.max_length, bf16=_eval_bf16(cfg), console=ctx.console)  # fmt: skip
    ctx.console.print(f"  baseline: the base model zero-shot scores {info['metric']} {info['mean']:.4g} on {info['n']} "
                      "test records, before training", highlight=False)  # fmt: skip
    return [out / "records.jsonl", out / "baseline.json"]


def _baseline_records(ctx: Ctx) -> Path | None:
    """The baseline stage's per-record base-model scores, for the evaluation to reuse (SFT; the
    evaluation fits classification's probe itself, on the data the tuned model trained on)."""
    path = ctx.dir("baseline") / "records.jsonl"
    return path if ctx.cfg.task == "sft" and ctx.cfg.pipeline.stages["baseline"] and path.exists() else None


def run_preflight(ctx: Ctx) -> list[Path]:
    cfg = ctx.cfg
    on = cfg.pipeline.stages
    rep = preflight(cfg, ctx.dir("split"), ctx.dir("preflight"),
                    curate_dir=ctx.dir("curate") if on["curate"] else None,
                    audit_dir=ctx.dir("audit") if on["audit"] else ctx.dir("curate"))  # fmt: skip
    _print_preflight(ctx.console, rep)
    return [ctx.dir("preflight") / "preflight.json"]


def _print_preflight(console: Any, rep: dict[str, Any]) -> None:
    from rich.table import Table

    e, m = rep["estimates"], rep["min_detectable_effect"]
    console.print(f"  preflight: ~{e['train_tokens']:,} training tokens, ~{e['seconds'] / 60:.1f} min at "
                  f"{e['tokens_per_second_assumed']:g} tok/s ({e['throughput_source']}), peak ~{e['peak_memory_gb']} GB; "
                  f"minimum detectable effect on {m['metric']}: {m['value']} with {m['n_test']} test records "
                  f"(alpha {m['alpha']}, power {m['power']})", highlight=False)  # fmt: skip
    if e.get("tune_skipped"):
        console.print(f"  preflight: no search trials: {e['tune_skipped']}", highlight=False)
    if line := _balance_line(rep.get("class_balance") or {}):
        console.print(f"  preflight: {line}", highlight=False)
    if rep["risks"]:
        t = Table(title="preflight risks")
        for col in ("level", "risk", "evidence", "fix"):
            t.add_column(col, overflow="fold")
        for r in rep["risks"]:
            t.add_row(r["level"], r["code"], r["evidence"], r["fix"])
        console.print(t)


def _balance_line(b: dict[str, Any]) -> str | None:
    """The class balance and what a constant answer scores on test, in one line (label tasks)."""
    parts = []
    if "constant" in b:
        prior = f", the class prior {b['prior_score']:.3f}" if "prior_score" in b else ""
        parts.append(f"class balance train {b['train']}, test {b['test']}; a constant answer {b['constant']!r} (the "
                     f"training majority) scores {b['metric']} {b['constant_score']:.3f} on test{prior}: the tuned "
                     "model must beat these")  # fmt: skip
    if "lead" in b:
        parts.append(f"the lead baseline (first ~{b['lead']['words']} words of each source) scores {b['lead']['metric']} "
                     f"{b['lead']['score']:.3f} on test")  # fmt: skip
    return "; ".join(parts) or None


def _reparent(ctx: Ctx, run_id: str | None) -> None:
    """lr_sweep and tune open their own top-level MLflow run; hang it under the pipeline's run."""
    if not (run_id and ctx.parent_run_id):
        return
    from tuneproof import track

    client = track._client(ctx.cfg.tracking.resolved_uri())
    client.set_tag(run_id, "mlflow.parentRunId", ctx.parent_run_id)


def plan(ctx: Ctx) -> Plan:
    with (ctx.dir("split") / "train.jsonl").open(encoding="utf-8") as f:
        n_train = sum(1 for line in f if line.strip())
    return budget_plan(ctx.cfg, n_train, ctx.dir("curate"))


def run_lr_sweep(ctx: Ctx) -> list[Path]:
    from tuneproof.search import lr_sweep

    pl = ctx.cfg.pipeline
    p = plan(ctx)
    res = lr_sweep(ctx.staged(), lrs=pl.sweep_lrs, steps=p.sweep, horizon=p.final, console=ctx.console)
    _reparent(ctx, res.mlflow_run_id)
    ctx.console.print(f"  lr sweep: best lr {res.best_lr:g}, {res.train_lr:g} for the {res.horizon}-step training; tune "
                      f"searches {res.recommended}", highlight=False)  # fmt: skip
    return [res.json_path, res.plot_path]


def run_curation_ab(ctx: Ctx) -> list[Path]:
    from tuneproof.pipeline._ab import ab_budget, curation_ab

    on, out = ctx.cfg.pipeline.stages, ctx.dir("curation_ab")
    steps, lr, source = ab_budget(ctx.cfg, ctx.dir("lr_sweep") / "lr_sweep.json", plan(ctx).sweep)
    res = curation_ab(ctx.cfg, ctx.dir("split"), ctx.dir("curate") if on["curate"] else None, out, steps=steps, lr=lr,
                      lr_source=source, parent_run_id=ctx.parent_run_id, console=ctx.console)  # fmt: skip
    if res["skipped"]:
        ctx.note = f"skipped: {res['skipped']}"
        ctx.console.print(f"  curation A/B: {ctx.note}", highlight=False)
    elif res["decision"] == "revert":
        ctx.console.print(f"[yellow]  curation A/B: curation made the model worse: {res['why']}; the search and the final "
                          f"training use the raw data ({out / 'raw_train.jsonl'})[/yellow]", highlight=False)  # fmt: skip
    else:
        ctx.console.print(f"  curation A/B ({steps} steps at lr {lr:g}): {res['why']}", highlight=False)
    return [p for p in (out / "ab.json", out / "raw_train.jsonl") if p.exists()]


def run_augment(ctx: Ctx) -> list[Path]:
    """Each augmentation method against none, on the training data the run would use (after the curation A/B)."""
    from tuneproof.pipeline._ab import ab_budget, reverted_train_path
    from tuneproof.pipeline._augment import augmentation_ab, print_augment

    out, split = ctx.dir("augment"), ctx.dir("split")
    base = reverted_train_path(ctx.cfg, ctx.dir("curation_ab")) or split / "train.jsonl"
    steps, lr, source = ab_budget(ctx.cfg, ctx.dir("lr_sweep") / "lr_sweep.json", plan(ctx).sweep)
    res = augmentation_ab(ctx.cfg, base, split / "val.jsonl", out, steps=steps, lr=lr, lr_source=source,
                          test_path=split / "test.jsonl", bf16=_eval_bf16(ctx.cfg), parent_run_id=ctx.parent_run_id,
                          console=ctx.console)  # fmt: skip
    print_augment(ctx.console, res)
    return [p for p in (out / "augment.json", out / "train_augmented.jsonl") if p.exists()]


def _train_file(ctx: Ctx) -> Path | None:
    """The training data of the search and the final training when it is not the split's train.jsonl (None):
    the augmented file when the augment stage kept a method (built on the curation A/B's choice), else the raw
    data when the curation A/B reverted curation."""
    from tuneproof.pipeline._ab import reverted_train_path
    from tuneproof.pipeline._augment import augmented_train_path

    return augmented_train_path(ctx.cfg, ctx.dir("augment")) or reverted_train_path(ctx.cfg, ctx.dir("curation_ab"))


def _augmented(ctx: Ctx) -> bool:
    from tuneproof.pipeline._augment import augmented_train_path

    return augmented_train_path(ctx.cfg, ctx.dir("augment")) is not None


def run_tune(ctx: Ctx) -> list[Path]:
    from tuneproof.search import tune

    p, out = plan(ctx), ctx.dir("tune")
    skipped = out / "skipped.json"
    if p.n_trials == 0:
        # No trial the budget affords is long enough to rank configurations: the final training
        # uses the sweep's rate. An earlier run's choice must not stand in for a search.
        for stale in ("best.yaml", "trials.json", "importances.json"):
            (out / stale).unlink(missing_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(skipped, json.dumps({"skipped": True, "reason": p.tune_skipped, "final_steps": p.final}, indent=2) + "\n")
        ctx.console.print(f"  tune: skipped: {p.tune_skipped}", highlight=False)
        return [skipped]
    skipped.unlink(missing_ok=True)
    overrides = [f"train.max_steps={p.tune}"] if p.tune else []
    res = tune(ctx.staged(_train_file(ctx)), overrides=overrides, n_trials=p.n_trials, new=ctx.new_study, console=ctx.console)
    if res is None:  # non-zero rank of a distributed job
        return []
    _reparent(ctx, res.mlflow_run_id)
    ctx.console.print(f"  tune: best {res.best_params} (val loss {res.best_value:.4g}, trial {res.best_trial})", highlight=False)
    return [f for f in (res.best_yaml, res.trials_json, out / "importances.json") if f.exists()]


def _sweep_lr(ctx: Ctx) -> float | None:
    """The lr sweep's rate for the final training, when the sweep ran in this pipeline (read as ``tune`` reads it)."""
    from tuneproof.search._space import _sweep_range

    swept = _sweep_range(ctx.run_dir) if ctx.cfg.pipeline.stages["lr_sweep"] else None
    return swept[1] if swept else None


def run_train(ctx: Ctx) -> list[Path]:
    from tuneproof.train import train

    cfg, p = ctx.cfg, plan(ctx)
    best = ctx.dir("tune") / "best.yaml"
    raw = ctx.staged(_train_file(ctx)).model_dump(mode="json")
    why: str | None = None  # how the pipeline chose the rate, when it did (train/lr_choice.json)
    lr_from: str | None = None  # train.json's lr_source when the pipeline chose the rate
    if p.factor != 1 and not cfg.train.max_steps:
        # train.epochs count passes over the data as given, in tokens: curation picks which
        # examples train, not how much training the model gets.
        raw["train"]["max_steps"] = p.final
        ctx.console.print(f"  train: {p.final} steps, the planned {cfg.train.epochs:g} epoch(s) over the data as given, "
                          f"{p.factor:.2f}x the kept records' tokens (curation removed records, not training)",
                          highlight=False)  # fmt: skip
    if _augmented(ctx) and not raw["train"].get("max_steps"):
        # The A/B tested the augmented rows at the plain data's budget: the final training keeps it.
        raw["train"]["max_steps"] = p.final
        ctx.console.print(f"  train: {p.final} steps, the budget of the data without augmentation", highlight=False)
    if cfg.pipeline.stages["tune"] and best.exists():
        # The best trial's parameters with this run's own step budget (trials may be shorter).
        tuned = load_config(best).model_dump(mode="json")
        for section in ("train", "model"):
            raw[section] = {**tuned[section], **{k: raw[section][k] for k in ("max_steps", "epochs", "eval_steps")
                                                 if k in raw[section]}}  # fmt: skip
        # The budget is examples seen, not steps: when the search picked another batch size,
        # the step counts scale so the final training sees as many examples (the same compute).
        planned, chosen = cfg.train.batch_size * cfg.train.grad_accum, raw["train"]["batch_size"] * raw["train"]["grad_accum"]
        if planned != chosen:
            steps = raw["train"].get("max_steps")
            for k in ("max_steps", "eval_steps"):
                if raw["train"].get(k):
                    raw["train"][k] = max(1, round(raw["train"][k] * planned / chosen))
            if steps:
                ctx.console.print(f"  train: batch {chosen} (from the search) instead of {planned}: {raw['train']['max_steps']} "
                                  f"steps, so it sees the planned {steps * planned} examples", highlight=False)  # fmt: skip
        why, lr_from = "the best search trial's lr", "search"
        if p.tune and raw["train"].get("lr") and raw["train"]["lr"] != _sweep_lr(ctx):
            # Trials shorter than the final training favour high rates, as the sweep's runs do
            # (the sweep's own rate, which the baseline trial uses, is already for this horizon).
            from tuneproof.search import training_lr

            horizon = max(1, round(p.final * planned / chosen))
            lr, note = training_lr(raw["train"]["lr"], raw["model"]["method"], p.tune, horizon, source="the best trial's lr")
            if note:
                raw["train"]["lr"] = lr
                why = note
                ctx.console.print(f"  train: lr {lr:g}: {note}", highlight=False)
    elif not cfg.train.lr and (swept := _sweep_lr(ctx)) is not None:
        # No search trials (skipped by the budget, or switched off): the sweep's rate, not the default.
        raw["train"]["lr"] = swept
        why, lr_from = "the lr sweep's rate for this training (no search trials)", "lr sweep"
        ctx.console.print(f"  train: lr {swept:g}, {why}", highlight=False)
    source: Any = load_config(raw)
    res = train(source, parent_run_id=ctx.parent_run_id, output_dir=ctx.dir("train"), console=ctx.console, lr_source=lr_from)
    ctx.console.print(f"  train: {res.global_step} steps, best step {res.best_step}, guard "
                      f"{'FIRED' if res.guard.get('overfitting') else 'quiet'}", highlight=False)  # fmt: skip
    choice = ctx.dir("train") / "lr_choice.json"
    choice.unlink(missing_ok=True)
    if why is None:
        return [res.train_json, res.model_dir]
    atomic_write(choice, json.dumps({"lr": raw["train"]["lr"], "why": why}, indent=2) + "\n")
    return [res.train_json, res.model_dir, choice]


def run_evaluate(ctx: Ctx) -> list[Path]:
    from tuneproof.evaluate import evaluate

    cfg, out = ctx.cfg, ctx.dir("evaluate")
    split = ctx.dir("split")
    # Scoring follows train.bf16 on the device it runs on. The probe and the cheap references
    # learn from the data the tuned model trained on (the raw data when the curation A/B
    # reverted curation). The base model's scores from the baseline stage are reused.
    bf16 = _eval_bf16(cfg)
    res = evaluate(cfg.model.name, ctx.dir("train") / "model", split / "test.jsonl", out, task=cfg.task,
                   config=cfg.eval.model_copy(update={"min_effect": min_effect(cfg)}),
                   train=_train_file(ctx) or split / "train.jsonl", labels=cfg.model.labels,
                   seed=cfg.train.seed, max_length=cfg.model.max_length, bf16=bf16,
                   tracking_uri=cfg.tracking.resolved_uri(), experiment=cfg.tracking.experiment,
                   parent_run_id=ctx.parent_run_id, console=ctx.console,
                   reference_scores=_baseline_records(ctx))  # fmt: skip
    ctx.console.print("  " + res.summary().replace("\n", "\n  "), highlight=False)
    return [out / "eval.json", out / "records.jsonl"]


def run_data_value(ctx: Ctx) -> list[Path]:
    """The learning curve over data size (pipeline/_data_value.py), with the final training's settings."""
    from tuneproof.pipeline._data_value import DATA_VALUE_FILE, PLOT_FILE, data_value

    data_value(ctx.cfg, parent_run_id=ctx.parent_run_id, console=ctx.console)
    out = ctx.dir("data_value")
    return [p for p in (out / DATA_VALUE_FILE, out / PLOT_FILE, out / "val_losses.jsonl") if p.exists()]


def run_decision(ctx: Ctx) -> list[Path]:
    d = decide(ctx.cfg)
    return [ctx.run_dir / "decision.json"] + ([ctx.run_dir / "model"] if d["ship"] else [])


def run_report(ctx: Ctx) -> list[Path]:
    from tuneproof.report import build_report  # ImportError: the report engine is not in this build

    html = Path(build_report(ctx.run_dir))
    if (ctx.run_dir / "model").is_dir():  # the shipped model carries its card, written from report.json
        from tuneproof.export import write_card

        write_card(ctx.run_dir, ctx.run_dir / "model")
    return [html, ctx.run_dir / "report.json"]


def _split_files(ctx: Ctx, *names: str) -> list[Path]:
    return [ctx.dir("split") / f"{n}.jsonl" for n in names]


def _manifest(ctx: Ctx) -> Path:
    """Curation's counts: the final budget is counted over the data as given."""
    return ctx.dir("curate") / "manifest.json"


def _wordnet(cfg: RunConfig) -> str | None:
    """The WordNet folder synonym replacement would read: installing it or pointing elsewhere reruns augment."""
    from tuneproof.augment import find_wordnet

    return str(find_wordnet(cfg.augment.wordnet)) if "synonym" in cfg.augment.methods else None


def _training_slice(cfg: RunConfig) -> dict[str, Any]:
    return {"task": cfg.task, "model": cfg.model.model_dump(mode="json"), "train": cfg.train.model_dump(mode="json")}


STAGES: list[Stage] = [
    Stage("audit", _source_files, _data_slice, run_audit),
    Stage("curate", _source_files, _data_slice, run_curate),
    Stage("split", lambda c: [_split_source(c), *([Path(c.cfg.data.eval_path)] if c.cfg.data.eval_path else [])],
          lambda cfg: {"task": cfg.task, "fields": cfg.data.fields, "split": cfg.data.split, "seed": cfg.train.seed,
                       "val": cfg.data.val_fraction, "test": cfg.data.test_fraction, "eval_path": cfg.data.eval_path,
                       "grouping": "near-duplicate clusters v1"},
          run_split),  # fmt: skip
    Stage("baseline", lambda c: _split_files(c, "train", "test"),
          lambda cfg: {"task": cfg.task, "model": cfg.model.name, "max_length": cfg.model.max_length, "seed": cfg.train.seed,
                       "bf16": cfg.train.bf16, "labels": cfg.model.labels,
                       "eval": cfg.eval.model_dump(mode="json", include={"metric", "max_new_tokens", "limit"})},
          run_baseline),  # fmt: skip
    Stage("preflight", lambda c: [*_split_files(c, "train", "val", "test"), c.dir("curate") / "manifest.json",
                                  c.dir("audit") / "audit.json", c.dir("baseline") / "records.jsonl"],
          lambda cfg: {**_training_slice(cfg), "pipeline": cfg.pipeline.model_dump(mode="json"), "metric": cfg.primary_metric,
                       "min_effect": min_effect(cfg), "limit": cfg.eval.limit, "n_trials": cfg.search.n_trials}, run_preflight),  # fmt: skip
    Stage("lr_sweep", lambda c: [*_split_files(c, "train", "val"), _manifest(c)],
          lambda cfg: {**_training_slice(cfg), "lrs": cfg.pipeline.sweep_lrs, "steps": cfg.pipeline.sweep_steps,
                       "budget": cfg.pipeline.search_budget, "trials": cfg.pipeline.tune_trials}, run_lr_sweep),  # fmt: skip
    Stage("curation_ab", lambda c: [*_split_files(c, "train", "val", "test"), _manifest(c), c.dir("curate") / "removed.jsonl",
                                    c.dir("lr_sweep") / "lr_sweep.json"],
          lambda cfg: {**_training_slice(cfg), "curate": cfg.pipeline.stages["curate"],
                       "lr_sweep": cfg.pipeline.stages["lr_sweep"], "steps": cfg.pipeline.sweep_steps,
                       "budget": cfg.pipeline.search_budget, "fields": cfg.data.fields, "confidence": cfg.eval.confidence,
                       "bootstrap": cfg.eval.bootstrap, "audit": cfg.audit.model_dump(mode="json")}, run_curation_ab),  # fmt: skip
    Stage("augment", lambda c: [*_split_files(c, "train", "val", "test"), _manifest(c), c.dir("curation_ab") / "ab.json",
                                c.dir("curation_ab") / "raw_train.jsonl", c.dir("lr_sweep") / "lr_sweep.json"],
          lambda cfg: {**_training_slice(cfg), "augment": cfg.augment.model_dump(mode="json"), "wordnet": _wordnet(cfg),
                       "stages": {k: cfg.pipeline.stages[k] for k in ("curate", "curation_ab", "lr_sweep")},
                       "steps": cfg.pipeline.sweep_steps, "budget": cfg.pipeline.search_budget,
                       "confidence": cfg.eval.confidence, "bootstrap": cfg.eval.bootstrap}, run_augment),  # fmt: skip
    Stage("tune", lambda c: [*_split_files(c, "train", "val"), _manifest(c), c.dir("lr_sweep") / "lr_sweep.json",
                             c.dir("curation_ab") / "ab.json", c.dir("augment") / "augment.json"],
          lambda cfg: {**_training_slice(cfg), "search": cfg.search.model_dump(mode="json"), "budget": cfg.pipeline.search_budget,
                       "trials": cfg.pipeline.tune_trials, "steps": cfg.pipeline.tune_steps, "lrs": cfg.pipeline.sweep_lrs}, run_tune),  # fmt: skip
    Stage("train", lambda c: [*_split_files(c, "train", "val"), _manifest(c), c.dir("tune") / "best.yaml",
                              c.dir("lr_sweep") / "lr_sweep.json", c.dir("curation_ab") / "ab.json",
                              c.dir("augment") / "augment.json"], _training_slice,
          run_train),  # fmt: skip
    Stage("evaluate", lambda c: [*_split_files(c, "train", "test"), c.dir("train") / "model", c.dir("baseline") / "records.jsonl"],
          lambda cfg: {"task": cfg.task, "model": cfg.model.name, "eval": cfg.eval.model_dump(mode="json"),
                       "min_effect": min_effect(cfg), "max_length": cfg.model.max_length}, run_evaluate),  # fmt: skip
    Stage("data_value", lambda c: [*_split_files(c, "train", "val"), _manifest(c), c.dir("train") / "train.json",
                                   c.dir("tune") / "best.yaml", c.dir("curation_ab") / "ab.json",
                                   *([Path(c.cfg.data.domain)] if c.cfg.data.domain else [])],
          lambda cfg: {**_training_slice(cfg), "data": _data_slice(cfg), "value": cfg.pipeline.data_value.model_dump(mode="json"),
                       "stages": {k: cfg.pipeline.stages[k] for k in ("tune", "curate", "curation_ab", "lr_sweep")},
                       "confidence": cfg.eval.confidence, "bootstrap": cfg.eval.bootstrap}, run_data_value),  # fmt: skip
]
ALWAYS = [Stage("decision", lambda c: [], lambda cfg: {}, run_decision), Stage("report", lambda c: [], lambda cfg: {}, run_report)]
_PACKAGES = ("tuneproof", "torch", "transformers", "peft", "trl", "optuna", "mlflow", "scikit-learn", "datasketch")


def _versions() -> dict[str, str]:
    out = {"tuneproof_code": code_hash()}
    for p in _PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[p] = metadata.version(p)
    return out


def _changed_versions(before: dict[str, str], now: dict[str, str]) -> list[str]:
    """``name old -> new`` for each package (and tuneproof's code) that differs between two ledgers."""
    return [f"{k} {before.get(k, '(none)')} -> {now.get(k, '(none)')}" for k in sorted(set(before) | set(now))
            if before.get(k) != now.get(k)]  # fmt: skip


def run(config: RunConfig | str | os.PathLike | dict, *, overrides: list[str] | None = None, strict: bool | None = None,
        console: Any = None, until: str | None = None) -> RunResult:  # fmt: skip
    """Run the whole pipeline into ``runs/<name>/``; stages whose inputs and config are unchanged are skipped.

    Stages: audit, curate, split, baseline, preflight, lr_sweep, curation_ab, tune, train, evaluate, then
    the decision and the report. Each records the sha256 of its input files and of its config
    slice in ``pipeline.json``; a rerun skips a stage when both match and its outputs exist, so
    an interrupted run resumes where it stopped. ``pipeline.stages.<name>: false`` switches one off.
    ``augment`` (after curation_ab) is off unless ``pipeline.stages.augment: true``.

    Args:
        config: a :class:`RunConfig`, a YAML path or a mapping.
        overrides: dotted ``key=value`` overrides.
        strict: stop after the preflight when it finds a high risk (default ``pipeline.strict``).
        console: a rich console; default stderr.
        until: stop after this stage (its name in :data:`STAGES`): no decision and no report.

    Returns:
        A :class:`RunResult`; ``result.decision["headline"]`` is "improved: ship ..." or
        "not proven: do not ship".

    Raises:
        ConfigError: a bad config. TuneproofError: a stage failed, or ``strict`` and a high risk
        (pipeline.json then records which stage and why).

    Example:
        >>> res = run("examples/qa_demo.yaml")  # doctest: +SKIP
        >>> res.decision["headline"]  # doctest: +SKIP
        'not proven: do not ship'
    """
    from rich.console import Console

    if isinstance(config, RunConfig) and not overrides:
        cfg = config
    else:
        cfg = load_config(config.model_dump(mode="json") if isinstance(config, RunConfig) else config, list(overrides or []))
    console = console or Console(stderr=True)
    strict = cfg.pipeline.strict if strict is None else strict
    run_dir = cfg.run_dir
    check_inputs(cfg).raise_for_problems()  # inputs that cannot train stop here, before any model loads
    with run_dir_lock(run_dir, "tuneproof run", console=console):  # one process per run directory
        return _run_locked(cfg, run_dir, strict, console, until)


def _run_locked(cfg: RunConfig, run_dir: Path, strict: bool, console: Any, until: str | None) -> RunResult:
    from tuneproof import track

    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(run_dir / "config.yaml", cfg.to_yaml())
    prev = read_ledger(run_dir)
    old = {s["name"]: s for s in prev.get("stages", [])}
    prev_parent = prev.get("mlflow_parent_run_id")
    ledger: dict[str, Any] = {"stages": [], "mlflow_parent_run_id": None, "versions": _versions(),
                              "data_hashes": {str(p): sha256_file(p) for p in _source_files(Ctx(cfg, console)) if p.is_file()}}  # fmt: skip
    console.rule(f"[bold]tuneproof run {cfg.name}")
    # A stage's output depends on the code that made it: after an upgrade (or an edited checkout)
    # nothing from the last run is reused, whatever its inputs.
    changed = _changed_versions(prev.get("versions", {}), ledger["versions"]) if old else []
    if changed:
        console.print(f"[yellow]tuneproof's code or a library changed since the last run in {run_dir} "
                      f"({'; '.join(changed)}): every stage runs again[/yellow]")  # fmt: skip
        ledger["rerun_because"] = changed
        old = {}
    try:
        parent_cm = track.start_run(cfg.tracking, f"{cfg.name}/pipeline", run_id=prev_parent, tags={"tuneproof.stage": "pipeline"})
        parent = parent_cm.__enter__()
    except TuneproofError:
        if not prev_parent:
            raise
        parent_cm = track.start_run(cfg.tracking, f"{cfg.name}/pipeline", tags={"tuneproof.stage": "pipeline"})
        parent = parent_cm.__enter__()
    ledger["mlflow_parent_run_id"] = parent.run_id
    ctx = Ctx(cfg, console, parent.run_id, ledger)
    result = RunResult(run_dir, ledger["stages"], None)
    exc_info: tuple[Any, Any, Any] = (None, None, None)
    try:
        _run_stages(ctx, old, strict, result, until)
    except BaseException as exc:
        exc_info = (type(exc), exc, exc.__traceback__)
        raise
    finally:
        try:
            write_ledger(run_dir, ledger)
        finally:  # the MLflow run is closed even when the ledger can't be written (a full disk)
            parent_cm.__exit__(*exc_info)
    dec = result.decision or {}
    track.set_tags(parent, {"decision": dec.get("headline", ""), "verdict": dec.get("verdict", "")})
    return result


def _run_stages(ctx: Ctx, old: dict[str, Any], strict: bool, result: RunResult, until: str | None = None) -> None:
    cfg, console = ctx.cfg, ctx.console
    names = [st.name for st in STAGES]
    if until is not None and until not in names:
        raise ValueError(f"until={until!r} is not a stage; the stages are {names}")
    stages = STAGES + ALWAYS if until is None else STAGES[: names.index(until) + 1]
    for i, st in enumerate(stages):
        entry: dict[str, Any] = {"name": st.name, "status": "not_run", "input_hash": None, "config_hash": None,
                                 "started": None, "seconds": 0.0, "outputs": [], "note": None}  # fmt: skip
        ctx.ledger["stages"].append(entry)
        if st.name in cfg.pipeline.stages and not cfg.pipeline.stages[st.name]:
            entry.update(status="off", note=f"switched off (pipeline.stages.{st.name}: false)")
            console.print(f"[dim]{st.name}: off[/dim]")
            continue
        entry["input_hash"] = hash_inputs([p for p in st.inputs(ctx) if p.exists()])
        entry["config_hash"] = hash_config(st.config(cfg))
        prev = old.get(st.name, {})
        same = prev.get("input_hash") == entry["input_hash"] and prev.get("config_hash") == entry["config_hash"]
        if st not in ALWAYS and same and prev.get("status") in ("done", "skipped_unchanged") and \
                all(Path(p).exists() for p in prev.get("outputs", [])):  # fmt: skip
            entry.update(status="skipped_unchanged", outputs=prev["outputs"], note="inputs and config unchanged")
            console.print(f"[dim]{st.name}: skipped (inputs and config unchanged)[/dim]")
            if st.name == "preflight" and strict:
                _strict_check(ctx, stages[i + 1:])
            continue
        # An interrupted search with the same inputs continues its study; a changed one starts afresh.
        ctx.new_study = not same
        entry["started"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        console.print(f"[bold cyan]{st.name}[/bold cyan] ...")
        # Recorded before the work: if the process is killed here, the rerun sees this stage with
        # the same hashes, redoes it, and an interrupted search continues its study.
        entry.update(status="failed", note="interrupted: the process stopped during this stage")
        write_ledger(ctx.run_dir, ctx.ledger)
        remove_temporaries(ctx.dir(st.name))  # left by a write this stage's last, killed, attempt began
        t0 = time.perf_counter()
        ctx.note = None
        try:
            outputs = st.work(ctx)
            entry.update(status="done", outputs=[str(p) for p in outputs], note=ctx.note)
        except ImportError as exc:
            if st.name != "report":
                entry.update(status="failed", note=f"ImportError: {exc}")
                _not_reached(ctx, stages[i + 1:], f"not reached: stage {st.name} failed")
                raise
            entry.update(status="not_run", note=f"the report engine is not available in this build: {exc}")
            console.print(f"[yellow]report: not built ({exc})[/yellow]")
        except BaseException as exc:
            entry.update(status="failed", note=f"{type(exc).__name__}: {exc}"[:2000])
            _not_reached(ctx, stages[i + 1:], f"not reached: stage {st.name} failed")
            raise
        finally:
            entry["seconds"] = round(time.perf_counter() - t0, 2)
            write_ledger(ctx.run_dir, ctx.ledger)
        if st.name == "decision":
            result.decision = json.loads((ctx.run_dir / "decision.json").read_text())
        if st.name == "report" and entry["status"] == "done":
            result.report = Path(entry["outputs"][0])
        if st.name == "preflight" and strict:
            _strict_check(ctx, stages[i + 1:])
    # Stopped early: the later stages' records stay, so the next full run still skips what is unchanged.
    ctx.ledger["stages"] += [old[st.name] for st in (STAGES + ALWAYS)[len(stages):] if until and st.name in old]


def _not_reached(ctx: Ctx, rest: list[Stage], why: str) -> None:
    for st in rest:
        ctx.ledger["stages"].append({"name": st.name, "status": "not_run", "input_hash": None, "config_hash": None,
                                     "started": None, "seconds": 0.0, "outputs": [], "note": why})  # fmt: skip


def _strict_check(ctx: Ctx, rest: list[Stage]) -> None:
    """Strict mode: a high preflight risk stops the run before any training."""
    rep = json.loads((ctx.dir("preflight") / "preflight.json").read_text())
    high = [r for r in rep["risks"] if r["level"] == "high"]
    if not high:
        return
    why = "strict mode: the preflight found a high risk"
    ctx.ledger["stages"][-1]["note"] = why
    _not_reached(ctx, rest, why)
    write_ledger(ctx.run_dir, ctx.ledger)
    raise TuneproofError(
        "strict mode: the preflight found high risks, so nothing was trained:\n"
        + "\n".join(f"  - {r['code']}: {r['evidence']}. Fix: {r['fix']}" for r in high)
        + f"\n(details: {ctx.dir('preflight') / 'preflight.json'}; rerun without --strict to go ahead anyway)"
    )
