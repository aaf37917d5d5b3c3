"""The ``tuneproof`` command line: one short function per command over the public API.

Errors caused by input (:class:`~tuneproof.errors.TuneproofError`) print as one clear
message and exit with code 1; a command whose engine is not built yet exits with 2.
"""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

from tuneproof import __version__
from tuneproof.errors import NotImplementedYet, TuneproofError

__all__ = ["app", "main"]

app = typer.Typer(
    name="tuneproof",
    help="Make fine-tuning projects succeed: audit and curate the data, search the learning rate, "
    "tune, train with guards, and prove the tuned model beats its reference.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
console = Console()
err_console = Console(stderr=True)

ConfigArg = Annotated[Path, typer.Argument(help="Run config (tuneproof.yaml); see examples/.")]
DomainOpt = Annotated[Optional[Path], typer.Option(help="File of reference examples of the target domain.")]
DomainTextOpt = Annotated[Optional[str], typer.Option(help="A sentence describing the target domain.")]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", "-s", help="Override a config field, e.g. --set train.lr=3e-4 (repeatable)."),
]


def _friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print our own errors as one message (no traceback) and pick the exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NotImplementedYet as exc:
            err_console.print(f"[yellow]{exc}[/yellow]", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except TuneproofError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except Exception as exc:  # a full disk or an unwritable folder, met inside a library's write
            from tuneproof._io import disk_error

            if (disk := disk_error(exc)) is None:
                raise
            err_console.print(f"[red]error:[/red] {disk}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def _load(config: Path, overrides: list[str] | None):
    from tuneproof.config import load_config

    return load_config(config, overrides or [])


def _version(value: bool) -> None:
    if value:
        console.print(f"tuneproof {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """tuneproof: fine-tuning with proof."""


@app.command()
@_friendly
def check(config: ConfigArg, set_: SetOpt = None) -> None:
    """Validate a config, read its data and locate its model, without loading any weights.

    Reports every config problem at once, the data's detected schema, every unreadable row
    (also written to <run dir>/check/rejects.jsonl), and inputs that cannot train: a task
    that does not fit the data, a single class, eval labels or schema that differ from the
    training data's, a split that would be empty. Exits with 1 on any of those.
    """
    from tuneproof.models import resolve_model
    from tuneproof.pipeline._inputs import check_inputs

    cfg = _load(config, set_)
    console.print(f"[green]config ok[/green]: {config} (run {cfg.name}, task {cfg.task})")
    found = check_inputs(cfg, rejects_dir=cfg.run_dir / "check")
    for result, name in ((found.train, "rejects.jsonl"), (found.eval, "rejects_eval.jsonl")):
        if result is not None:
            console.print(result.summary(), highlight=False)
            if result.rejected:
                console.print(f"[yellow]{len(result.rejected)} rejected rows written to {cfg.run_dir / 'check' / name}[/yellow]")
    for warning in found.warnings:
        console.print(f"[yellow]warning: {warning}[/yellow]", highlight=False)
    source = resolve_model(cfg.model.name)
    console.print(f"model: {cfg.model.name} ({source.kind}{f', {source.path}' if source.path else ''})")
    found.raise_for_problems()


EvalOpt = Annotated[Optional[Path], typer.Option("--eval", help="Eval data, to check for leakage.")]
ModelOpt = Annotated[
    Optional[str], typer.Option(help="Model whose tokenizer measures length (too_long); default: the config's, or smollm2-135m.")
]
TaskOpt = Annotated[Optional[str], typer.Option(help="sft or classification (label_issue runs for classification, and for SFT whose answers are a few labels); default: the config's, or sft.")]
FieldsOpt = Annotated[
    Optional[list[str]], typer.Option("--field", help="Map a canonical field to a column, e.g. --field prompt=question.")
]
AuditConfigOpt = Annotated[
    Optional[Path], typer.Option("--config", help="Run config whose audit: section sets thresholds and decisions.")
]


def _audit_options(config: Path | None, set_: list[str] | None, fields: list[str] | None, **given: Any) -> dict[str, Any]:
    """Keyword arguments for audit()/curate(): the options given on the command line, else
    the run config's (data.domain, data.domain_text, data.eval_path, task, model.name,
    model.max_length), else the defaults."""
    from tuneproof.config import AuditConfig, load_config

    mapping = {}
    for item in fields or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise TuneproofError(f"--field {item!r}: expected canonical=column, e.g. --field prompt=question.")
        mapping[key.strip()] = value.strip()
    defaults: dict[str, Any] = {"model": "smollm2-135m", "task": "sft"}
    if config is not None:
        cfg = load_config(config, set_ or [])
        audit_cfg = cfg.audit_for_run
        mapping = mapping or cfg.data.fields
        if given.get("domain") is None and given.get("domain_text") is None:
            defaults.update(domain=cfg.data.domain, domain_text=cfg.data.domain_text)
        defaults.update(eval_data=cfg.data.eval_path, model=cfg.model.name, task=cfg.task)
    elif set_:
        stub = {"name": "audit", "task": "sft", "data": {"path": "-"}}
        audit_cfg = load_config(stub, set_).audit
    else:
        audit_cfg = AuditConfig()
    out = {k: v for k, v in defaults.items()}
    out.update({k: v for k, v in given.items() if v is not None})
    return {**out, "config": audit_cfg, "fields": mapping or None}


@app.command()
@_friendly
def audit(
    data: Annotated[Path, typer.Argument(help="Dataset: .jsonl, .csv, .parquet or a datasets directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for findings.jsonl and audit.json.")],
    domain: DomainOpt = None,
    domain_text: DomainTextOpt = None,
    eval_data: EvalOpt = None,
    model: ModelOpt = None,
    task: TaskOpt = None,
    field: FieldsOpt = None,
    config: AuditConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Find duplicates, low-quality, off-domain, mislabelled, leaked, too-long and PII records.

    Changes nothing: writes findings.jsonl (one finding per record and check, with its
    reason) and audit.json (dataset statistics and counts per check).
    """
    from tuneproof.audit import audit as run_audit

    options = _audit_options(
        config, set_, field, domain=domain, domain_text=domain_text, eval_data=eval_data, model=model, task=task
    )
    result = run_audit(data, out=out, **options)
    console.print(result.table())
    for problem in result.stats["problems"]:
        console.print(f"[yellow]dataset:[/yellow] {problem}", highlight=False)
    console.print(f"findings: {out / 'findings.jsonl'}; statistics: {out / 'audit.json'}")


@app.command()
@_friendly
def curate(
    data: Annotated[Path, typer.Argument(help="Dataset to curate.")],
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="Folder for kept.jsonl, removed.jsonl, manifest.json.")
    ] = None,
    domain: DomainOpt = None,
    domain_text: DomainTextOpt = None,
    eval_data: EvalOpt = None,
    model: ModelOpt = None,
    task: TaskOpt = None,
    field: FieldsOpt = None,
    config: AuditConfigOpt = None,
    set_: SetOpt = None,
    dry_run: Annotated[bool, typer.Option(help="Print what each threshold would remove; write nothing.")] = False,
    select: Annotated[Optional[float], typer.Option(help="Keep only the best FRACTION by quality and relevance.")] = None,
) -> None:
    """Keep the clean, relevant records; write every removed record with its reasons.

    Invariant: kept + removed + unreadable = input records.
    """
    from tuneproof.audit import curate as run_curate

    if out is None and not dry_run:
        raise TuneproofError("curate needs --out DIR (or --dry-run to only print what would be removed).")
    if select is not None and not 0 < select <= 1:
        raise TuneproofError(f"--select {select}: must be a fraction in (0, 1], e.g. --select 0.2 keeps the best 20%.")
    options = _audit_options(
        config, set_, field, domain=domain, domain_text=domain_text, eval_data=eval_data, model=model, task=task
    )
    res = run_curate(data, out=out, dry_run=dry_run, select=select, **options)
    console.print(res.audit.table())
    rows = [(c, d, rule, n) for c, d, rule, n in res.dry_run_rows()]
    print_table("what curation removes" + (" (dry run: nothing written)" if dry_run else ""), rows,
                ["check", "decision", "threshold / rule", "records removed"])  # fmt: skip
    _print_budget(res.manifest["budget"])
    c = res.manifest["counts"]
    console.print(
        f"input {c['input_rows']} rows = kept {c['kept']} + removed {c['removed']} + unreadable {c['unreadable']}",
        highlight=False,
    )
    if not dry_run:
        console.print(f"written to {out}: kept.jsonl, removed.jsonl, unreadable.jsonl, manifest.json")


def _print_budget(budget: dict[str, Any]) -> None:
    """The removal budget: per check its share of the rows, the limit and the verdict; then the total."""
    def pct(x: float | None) -> str:
        return "-" if x is None else f"{x:.0%}"

    rows = [(c, e["would_remove"], pct(e["share"]), pct(e["expected_share"]), pct(e["limit"]), e["verdict"])
            for c, e in budget["checks"].items()]  # fmt: skip
    t = budget["total"]
    rows.append(("all budgeted checks", "", pct(t["share"]), pct(t["expected_share"]), pct(t["limit"]), t["verdict"]))
    print_table(f"removal budget ({budget['rows']} readable rows)", rows,
                ["check", "would remove", "share", "expected", "limit", "verdict"])  # fmt: skip
    for c in budget["suspended"]:
        e = budget["checks"][c]
        examples = "; ".join(f"{x['id']} {x['text'][:60]!r}" for x in e["examples"])
        console.print(f"[yellow]{c}: over the removal budget ({e['why']}): {e['flagged_and_kept']} rows flagged and "
                      f"kept, e.g. {examples}. If they really are to go, raise audit.max_check_removed_share and "
                      "audit.max_removed_share (1 turns the budget off).[/yellow]", highlight=False)  # fmt: skip


@app.command("lr-sweep")
@_friendly
def lr_sweep(
    config: ConfigArg,
    set_: SetOpt = None,
    lrs: Annotated[
        Optional[str], typer.Option("--lrs", help="Comma-separated rates, e.g. 1e-5,1e-4,1e-3; default per method.")
    ] = None,
    steps: Annotated[Optional[int], typer.Option(help="Training steps per rate (default: train.max_steps, at most 30).")] = None,
) -> None:
    """Short learning-rate sweep; writes lr_sweep.json, a plot and the range for `tune`."""
    from tuneproof.search import lr_sweep as run_sweep

    grid = None
    if lrs:
        try:
            grid = [float(x) for x in lrs.split(",") if x.strip()]
        except ValueError:
            raise TuneproofError(f"--lrs {lrs!r}: not a comma-separated list of numbers. Fix: e.g. --lrs 1e-5,1e-4,1e-3") from None
    result = run_sweep(_load(config, set_), lrs=grid, steps=steps, console=err_console)
    from tuneproof.search._common import fmt_value

    rows = [(fmt_value(p["lr"], rate=True), f"{p['val_loss']:.4f}" if p.get("val_loss") is not None else "-", p["status"]) for p in result.points]
    print_table("lr sweep (validation loss)", rows, ["lr", "val loss", "status"])
    console.print(f"recommended range for tune: [{result.recommended['low']:g}, {result.recommended['high']:g}] (log)")
    if result.warning:
        err_console.print(f"[yellow]warning: {result.warning}[/yellow]")


@app.command()
@_friendly
def tune(
    config: ConfigArg,
    set_: SetOpt = None,
    storage: Annotated[
        Optional[str], typer.Option(help="Optuna storage URL; postgresql://... lets several workers share a study.")
    ] = None,
    n_trials: Annotated[Optional[int], typer.Option(help="Total trials wanted in the study (default search.n_trials).")] = None,
    study_name: Annotated[Optional[str], typer.Option(help="Study name (default: the run name).")] = None,
    new: Annotated[bool, typer.Option("--new/--resume", help="Start the study afresh, or continue it (default).")] = False,
) -> None:
    """Bayesian search (Optuna TPE) with pruning; writes best.yaml and parameter importances."""
    from tuneproof._lock import run_dir_lock
    from tuneproof.search import _dist
    from tuneproof.search import tune as run_tune

    cfg = _load(config, set_)
    # A shared storage lets several workers search one study together; the run directory's own
    # SQLite study is one process's.
    shared = storage or cfg.search.storage
    with contextlib.nullcontext() if shared else run_dir_lock(cfg.run_dir, "tuneproof tune", console=err_console):
        result = run_tune(cfg, storage=storage, n_trials=n_trials, study_name=study_name, new=new, console=err_console)
    _dist.finish()
    if result is not None:  # None on the non-zero ranks of a distributed job
        console.print(f"best val loss {result.best_value:.4f} (trial {result.best_trial}); train it with: "
                      f"tuneproof train {result.best_yaml}", soft_wrap=True)  # fmt: skip


@app.command()
@_friendly
def train(
    config: ConfigArg,
    set_: SetOpt = None,
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint.")] = False,
) -> None:
    """Train one model (full, LoRA or freeze) with early stopping and the overfitting guard."""
    from tuneproof._lock import run_dir_lock
    from tuneproof.search import _dist
    from tuneproof.train import train as run_training
    from tuneproof.train._engine import describe_best

    cfg = _load(config, set_)
    with run_dir_lock(cfg.run_dir, "tuneproof train", console=err_console):
        result = run_training(cfg, resume=resume, console=err_console)
    _dist.finish()
    guard = result.guard
    print_table(
        "training",
        [
            ("model", str(result.model_dir)),
            ("steps", f"{result.global_step}" + (" (stopped early)" if result.stopped_early else "")),
            ("best", describe_best(result).removeprefix("best ")),
            ("overfitting", f"at step {guard['detected_step']}: {guard['reason']}" if guard["overfitting"] else "none"),
            ("summary", str(result.train_json)),
            ("MLflow run", result.mlflow_run_id),
        ],
        ["", ""],
    )


@app.command()
@_friendly
def evaluate(
    tuned: Annotated[str, typer.Option(help="Tuned model directory or PEFT adapter.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for eval.json and records.jsonl.")],
    base: Annotated[
        Optional[str], typer.Option(help="Base model: bundled name, model directory or .gguf file (default: the config's).")
    ] = None,
    data: Annotated[Optional[Path], typer.Option(help="Held-out test data (default: the config's data.eval_path).")] = None,
    limit: Annotated[Optional[int], typer.Option(help="Score only the first N records.")] = None,
    task: Annotated[Optional[str], typer.Option(help="sft or classification (default: the config's, else sft).")] = None,
    metric: Annotated[
        Optional[str],
        typer.Option(help="Primary metric. sft: nll, exact_match, token_f1, rouge_l, label_accuracy; "
                     "classification: accuracy, macro_f1, auroc."),
    ] = None,
    train_data: Annotated[
        Optional[Path], typer.Option("--train", help="Training split: fits the linear probe (classification); gives the "
                                         "majority, prior and lead references.")
    ] = None,
    forgetting_text: Annotated[
        Optional[str], typer.Option(help="General text for the forgetting check: a file, or xsum / fortunes.")
    ] = None,
    labels: Annotated[Optional[str], typer.Option(help="Classification labels in index order, comma-separated.")] = None,
    config: Annotated[Optional[Path], typer.Option(help="Run config: takes the eval section, model, task and tracking.")] = None,
    set_: SetOpt = None,
    batch_size: Annotated[int, typer.Option(help="Records per batch.")] = 8,
    bf16: Annotated[
        bool, typer.Option(help="bf16 autocast: faster NLL scoring on CPUs with bf16 support (1.7x on a 2-core CPU); mean NLL moves by about 0.003.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the bootstrap, the probe and any new head.")] = 0,
) -> None:
    """Score tuned against its reference on the same records: CIs, a verdict, forgetting."""
    from tuneproof.evaluate import evaluate as run_evaluate

    if set_ and not config:
        raise TuneproofError("tuneproof evaluate: --set overrides a config, but no --config was given. Fix: add --config.")
    cfg = _load(config, set_) if config else None
    base = base or (cfg.model.name if cfg else None)
    data = data or (Path(cfg.data.eval_path) if cfg and cfg.data.eval_path else None)
    if base is None or data is None:
        raise TuneproofError(
            f"tuneproof evaluate: missing {' and '.join(n for n, v in (('--base', base), ('--data', data)) if v is None)}. "
            "Fix: pass them, or --config with model.name and data.eval_path."
        )
    result = run_evaluate(
        base, tuned, data, out,
        task=task or (cfg.task if cfg else "sft"),  # type: ignore[arg-type]
        config=cfg.eval if cfg else None, metric=metric, limit=limit,
        train=train_data or (cfg.data.path if cfg and (task or cfg.task) == "classification" else None),
        forgetting_text=forgetting_text, fields=(cfg.data.fields or None) if cfg else None,
        labels=[x.strip() for x in labels.split(",")] if labels else (cfg.model.labels if cfg else None),
        seed=seed, batch_size=batch_size, max_length=cfg.model.max_length if cfg else 512, bf16=bf16,
        tracking_uri=cfg.tracking.resolved_uri() if cfg else None,
        experiment=cfg.tracking.experiment if cfg else "tuneproof",
    )  # fmt: skip
    color = {"improved": "green", "regressed": "red"}.get(result.verdict, "yellow")
    console.print(f"[{color}]{result.summary()}[/{color}]", highlight=False)
    console.print(f"wrote {out / 'eval.json'} and {out / 'records.jsonl'}")


@app.command()
@_friendly
def run(
    config: ConfigArg,
    set_: SetOpt = None,
    strict: Annotated[bool, typer.Option(help="Stop when the preflight finds a high risk.")] = False,
) -> None:
    """The whole pipeline: audit, curate, split, preflight, lr-sweep, tune, train, evaluate, decision, report."""
    from tuneproof.pipeline import run as run_pipeline

    result = run_pipeline(_load(config, set_), strict=strict or None, console=console)
    console.print((result.decision or {}).get("headline", "no decision"), highlight=False)


@app.command("data-value")
@_friendly
def data_value(
    config: ConfigArg,
    set_: SetOpt = None,
    lr: Annotated[Optional[float], typer.Option(help="Rate for every point (default: the rate the run chose).")] = None,
    budget: Annotated[
        Optional[float], typer.Option(help="The curve's cost in final trainings (default pipeline.data_value.budget: 2).")
    ] = None,
    seeds: Annotated[Optional[int], typer.Option(help="Trainings per point (default pipeline.data_value.seeds: 2).")] = None,
) -> None:
    """Learning curve over data size on a run's split: ranked vs random subsets, and would more data help."""
    from tuneproof.pipeline._data_value import data_value as draw_curve

    extra = [f"pipeline.data_value.{k}={v}" for k, v in (("budget", budget), ("seeds", seeds)) if v is not None]
    cfg = _load(config, [*(set_ or []), *extra])
    res = draw_curve(cfg, lr=lr, console=err_console)
    rows = []
    for r in res["rows"]:
        if "full" in r:
            rows.append((f"{r['fraction']:.0%}", r["records"], f"{r['full']['val_loss']:.4f}", "(full data)", "", ""))
            continue
        d = r["ranked_minus_random"]
        ci = f"{d['value']:+.4f} [{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}]" if d.get("ci") else f"{d['value']:+.4f}"
        rows.append((f"{r['fraction']:.0%}", r["records"], f"{r['ranked']['val_loss']:.4f}", f"{r['random']['val_loss']:.4f}", ci, d["verdict"]))
    print_table("data value (validation loss)", rows, ["fraction", "records", "ranked", "random", "ranked - random (CI)", "verdict"])
    rec = res["recommendation"]
    console.print(rec["why"] + (f"; advice: {rec['advice']}" if rec.get("advice") else ""), highlight=False, soft_wrap=True)
    console.print(f"wrote {cfg.run_dir / 'data_value'} (data_value.json, data_value.png)", highlight=False, soft_wrap=True)


@app.command()
@_friendly
def augment(config: ConfigArg, set_: SetOpt = None) -> None:
    """Test training-data augmentation: each method in augment.methods against none, in a paired A/B.

    Runs the pipeline up to its augment stage (earlier stages are reused when unchanged). A
    method is kept only when it lowers the validation loss beyond noise with two seeds; the
    added records only ever join the training split. Writes runs/<name>/augment/augment.json.
    """
    from tuneproof.pipeline import augment as augment_data

    res = augment_data(config, overrides=set_, console=err_console)
    rows = [(m, r.get("added", 0), r.get("decision") or "not tested", r.get("why")) for m, r in res["methods"].items()]
    print_table("augmentation A/B", rows, ["method", "records added", "decision", "why"])
    console.print(res["why"], highlight=False, soft_wrap=True)


@app.command()
@_friendly
def report(run_dir: Annotated[Path, typer.Argument(help="A run directory, runs/<name>.")]) -> None:
    """Rebuild report.html and report.json from a run directory."""
    from tuneproof.report import build_report

    path = build_report(run_dir)
    console.print(f"report: {path}", highlight=False, soft_wrap=True)
    console.print(f"facts for machines: {path.with_name('report.json')}", highlight=False, soft_wrap=True)


RunDirArg = Annotated[Path, typer.Argument(help="A run directory, runs/<name>; its shipped model is used, else the trained one.")]


@app.command()
@_friendly
def predict(
    run_dir: RunDirArg,
    data: Annotated[Path, typer.Option(help="New records: .jsonl, .csv, .parquet or a datasets directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Predictions file (.jsonl), one line per readable record.")],
    rejects: Annotated[Optional[Path], typer.Option(help="Unreadable rows (default: <out>.rejects.jsonl).")] = None,
    field: FieldsOpt = None,
    batch_size: Annotated[int, typer.Option(help="Records per batch.")] = 8,
    max_new_tokens: Annotated[Optional[int], typer.Option(help="SFT generation budget (default: the run's eval.max_new_tokens).")] = None,
    bf16: Annotated[bool, typer.Option(help="bf16 autocast, as evaluate --bf16.")] = False,
) -> None:
    """The tuned model's outputs for new records: SFT generations, or labels with probabilities."""
    from tuneproof.serve import predict as run_predict

    pairs = [item.partition("=") for item in field or []]
    if any(not k or not sep or not v for k, sep, v in pairs):
        raise TuneproofError(f"--field {field}: expected canonical=column, e.g. --field text=review.")
    fields = {k.strip(): v.strip() for k, _, v in pairs} or None
    result = run_predict(run_dir, data, out, rejects=rejects, fields=fields, batch_size=batch_size,
                         max_new_tokens=max_new_tokens, bf16=bf16)  # fmt: skip
    if not result.stats["proven"]:
        err_console.print(f"[yellow]{run_dir} did not ship its model (its gain is not proven): these are the "
                          "outputs of the trained model all the same[/yellow]", highlight=False)  # fmt: skip
    console.print(result.summary(), highlight=False, soft_wrap=True)


@app.command()
@_friendly
def chat(
    run_dir: RunDirArg,
    tuned_only: Annotated[bool, typer.Option("--tuned-only", help="Answer with the tuned model alone.")] = False,
    max_new_tokens: Annotated[Optional[int], typer.Option(help="Tokens per answer (default: the run's eval.max_new_tokens).")] = None,
) -> None:
    """Each prompt (a line of input) answered by the base and then the tuned model, streamed, in the trained format.

    Works in a terminal and in a pipe: `echo "a question" | tuneproof chat runs/qa` answers each line once.
    """
    from tuneproof.serve import chat as run_chat

    run_chat(run_dir, tuned_only=tuned_only, max_new_tokens=max_new_tokens)


@app.command()
@_friendly
def export(
    run_dir: RunDirArg,
    format_: Annotated[str, typer.Option("--format", "-f", help="merged (Hugging Face folder), gguf (f16 + q8_0, "
                                         "Llama-family) or ollama (GGUF + Modelfile).")] = "merged",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Folder to write (default <run_dir>/export/<format>).")] = None,
) -> None:
    """Export the run's model with its model card (README.md); GGUF files are checked by loading them back."""
    from tuneproof.export import export as run_export

    result = run_export(run_dir, format_, out)
    if not result.proven:
        err_console.print(f"[yellow]{run_dir} did not ship its model: its gain is not proven, and the model card "
                          "says so[/yellow]", highlight=False)  # fmt: skip
    console.print(result.summary(), highlight=False, soft_wrap=True)
    if any(not c["passed"] for c in result.checks):
        raise TuneproofError(f"a GGUF file does not reproduce the merged model within tolerance (see {result.out / 'export.json'}); "
                             "do not use it. Report this with export.json attached.")  # fmt: skip


@app.command()
@_friendly
def demo(
    workdir: Annotated[Path, typer.Option(help="Where the demo writes its data and runs.")] = Path("runs/demo"),
) -> None:
    """Closed-book QA with SmolLM2-135M on NQ-open mixed with real off-topic noise.

    Needs no arguments and no files: fetches the data, runs the whole pipeline (~15 min on
    2 CPU cores) and prints the verdict, the key numbers and the report path.
    """
    from tuneproof.demo import run_demo

    run_demo(workdir, console)


@app.command()
@_friendly
def ui(
    target: Annotated[
        Path, typer.Argument(help="A config file, a runs directory, or a run directory.")
    ] = Path("runs"),
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
) -> None:
    """Start the MLflow UI on the run's tracking store, bound to 127.0.0.1."""
    uri = _tracking_uri(target)
    console.print(f"MLflow UI for {uri} at http://127.0.0.1:{port}  (Ctrl-C to stop)")
    cmd = [
        sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    # One worker and no background job runner: browsing runs needs neither, and each
    # costs a process on a 2-core machine.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    sys.stdout.flush()
    # exec, not a child process: Ctrl-C and kill reach the server itself.
    os.execve(sys.executable, cmd, env)


def _tracking_uri(target: Path) -> str:
    if target.suffix in (".yaml", ".yml"):
        return _load(target, None).tracking.resolved_uri()
    for folder in (target, target.parent):
        db = folder / "mlflow.db"
        if db.is_file():
            return f"sqlite:///{db.resolve()}"
    raise TuneproofError(
        f"no MLflow tracking store (mlflow.db) in {target} or its parent. "
        "Fix: pass the runs directory or the run's config; a training run creates the store."
    )


def print_table(title: str, rows: list[tuple[Any, ...]], columns: list[str]) -> None:
    """Print a small rich table (used by commands and the demo)."""
    table = Table(title=title)
    for c in columns:
        table.add_column(c)
    for row in rows:
        table.add_row(*[str(v) for v in row])
    console.print(table)


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Our own rich progress bars and messages say what happens; the libraries' per-file
    # loading bars, INFO lines and deprecation notices (about their own internals) would
    # bury them. Users can still turn any of these back on through the same variables.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft|torch)\.")
    app()


if __name__ == "__main__":
    main()
