"""``tune``: Optuna TPE over the search space, one short training per trial, with pruning."""

from __future__ import annotations

import json
import math
import os
import socket
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tuneproof._io import atomic_write, disk_error
from tuneproof.config import RunConfig, load_config
from tuneproof.errors import ConfigError, TuneproofError
from tuneproof.search._common import fmt_value, short_header

__all__ = ["TuneResult", "tune"]

_DONE_STATES = ("COMPLETE", "PRUNED")


@dataclass
class TuneResult:
    """What a search produced.

    Attributes:
        study_name: the Optuna study (default: the run name).
        storage: the storage URL, password hidden.
        best_params: the best trial's parameters (search names: ``lr``, ``lora_r``...).
        best_value: its validation loss.
        best_trial: its number.
        best_yaml: ``<run dir>/tune/best.yaml``, a full config for ``tuneproof train``.
        importances: parameter importances (optuna.importance), or None with ``importances_note``.
        trials_json: ``<run dir>/tune/trials.json``: every trial, pruned and failed included.
        counts: trials per state in the study (COMPLETE, PRUNED, FAIL...).
        already_done: complete + pruned trials the study held before this call.
        space: the search space used, with the origin of each dimension.
        mlflow_run_id: the parent MLflow run of this call's trials.
    """

    study_name: str
    storage: str
    best_params: dict[str, Any]
    best_value: float
    best_trial: int
    best_yaml: Path
    importances: dict[str, float] | None
    importances_note: str | None
    trials_json: Path
    counts: dict[str, int]
    already_done: int
    space: dict[str, Any]
    mlflow_run_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def _load(config: Any, overrides: Sequence[str] | None) -> RunConfig:
    if isinstance(config, RunConfig):
        return load_config(config.model_dump(mode="json"), list(overrides or [])) if overrides else config
    return load_config(config, list(overrides or []))


def tune(
    config: RunConfig | str | os.PathLike | dict,
    *,
    overrides: Sequence[str] | None = None,
    storage: str | None = None,
    n_trials: int | None = None,
    study_name: str | None = None,
    new: bool = False,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    sampler_seed: int | None = None,
    console: Any = None,
) -> TuneResult | None:
    """Search hyperparameters with Optuna (seeded TPE) and write the best config.

    Each trial trains through the engine with the trial's parameters, reports validation
    loss at each evaluation to a PatientPruner-wrapped Hyperband pruner, and is an MLflow
    child run under one parent run. The study lives in ``<run dir>/optuna.db`` unless
    ``storage`` (or ``search.storage``) names another database; several processes given the
    same PostgreSQL URL share one study. Rerunning continues the study: ``n_trials`` counts
    its complete and pruned trials, old and new.

    Args:
        config: a :class:`RunConfig`, a YAML path or a mapping.
        overrides: dotted ``key=value`` overrides.
        storage: an SQLAlchemy URL (``postgresql://user:pw@host/db``); default SQLite in the run dir.
        n_trials: total complete+pruned trials wanted; default ``search.n_trials``.
        study_name: default the run name.
        new: delete an existing study of that name first instead of continuing it.
        heartbeat_interval, grace_period: seconds; a trial without a heartbeat for
            ``grace_period`` is failed and retried with the same parameters.
        sampler_seed: seed of the sampler; default ``train.seed`` (which also fixes the
            data split and initialisation, so vary this one to compare search seeds).
        console: a rich console; default stderr.

    Returns:
        A :class:`TuneResult`; ``None`` on the non-zero ranks of a distributed job.

    Raises:
        ConfigError: a bad search space (empty or inverted range, unknown name, lora_* without
            LoRA, a value the config rejects) or ``n_trials < 1``, before any trial.
        TuneproofError: the storage can't be reached (before any trial), or no trial completed.

    Example:
        >>> res = tune("examples/sentiment.yaml", n_trials=8)  # doctest: +SKIP
        >>> res.best_params, res.best_yaml  # doctest: +SKIP
    """
    from rich.console import Console

    from tuneproof.search import _dist, _space, _storage

    cfg = _load(config, overrides)
    console = console or Console(stderr=True)
    target = cfg.search.n_trials if n_trials is None else n_trials
    if target < 1:
        raise ConfigError("--n-trials", [f"n_trials = {target}: a search needs at least 1 trial. Fix: pass --n-trials 1 or more."])
    space, origin = _space.resolve_space(cfg)
    if _dist.is_distributed() and _dist.rank() != 0:
        _follow(cfg, console)
        return None
    url = _storage.resolve_url(storage or cfg.search.storage, cfg.run_dir)
    store = _storage.open_storage(
        url,
        heartbeat_interval=heartbeat_interval or _storage.HEARTBEAT_INTERVAL_S,
        grace_period=grace_period or _storage.HEARTBEAT_GRACE_S,
    )
    search = _Search(cfg, space, origin, store, _storage.redact(url), study_name or cfg.name, target, console)
    search.sampler_seed = cfg.train.seed if sampler_seed is None else sampler_seed
    return search.run(new=new)


def equal_examples(trial: dict[str, Any], base: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """A trial's config with its step budget scaled so it sees the examples the config's batch would.

    A step budget (``train.max_steps``) means examples = steps x batch: without scaling, a
    trial at twice the batch sees twice the data in its short run and wins on validation
    loss for that reason alone, although the final training (a fixed number of examples)
    then gets half the updates. Returns the config and the factor (trial batch / config
    batch) that converts the trial's steps to steps at the config's batch, for the pruner.
    """
    t, b = trial["train"], base["train"]
    scale = (t["batch_size"] * t.get("grad_accum", 1)) / (b["batch_size"] * b.get("grad_accum", 1))
    if scale != 1:
        for k in ("max_steps", "eval_steps"):
            if t.get(k):
                t[k] = max(1, round(b[k] / scale))
    return trial, scale


class _Search:
    def __init__(self, cfg: RunConfig, space: dict, origin: dict, store: Any, shown_url: str, name: str, target: int, console: Any) -> None:
        self.cfg, self.space, self.origin, self.store = cfg, space, origin, store
        self.shown_url, self.name, self.target, self.console = shown_url, name, target, console
        self.out = cfg.run_dir / "tune"
        self.base = cfg.model_dump(mode="json")
        self.parent_id: str | None = None
        self.failures = 0
        self.sampler_seed = cfg.train.seed

    def run(self, new: bool) -> TuneResult:
        import optuna
        from optuna.study import MaxTrialsCallback
        from optuna.trial import TrialState

        from tuneproof import track
        from tuneproof.search import _dist
        from tuneproof.search._optuna import make_pruner, make_sampler

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # Heartbeats, PatientPruner and fail_stale_trials are "experimental" in Optuna 5; we rely on them knowingly.
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        cfg = self.cfg
        if new:
            try:
                optuna.delete_study(study_name=self.name, storage=self.store)
                self.console.print(f"--new: deleted the earlier study {self.name!r}")
            except KeyError:
                pass
        t = cfg.train
        pruner = make_pruner(cfg.search, min_resource=t.eval_steps or 1, max_resource=t.max_steps)
        study = optuna.create_study(
            study_name=self.name, storage=self.store, direction="minimize", pruner=pruner, load_if_exists=True
        )
        if not study.trials and cfg.search.baseline_first:
            from tuneproof.search._space import baseline_params

            first = baseline_params(cfg, self.space)
            if first:
                study.enqueue_trial(first, user_attrs={"baseline": True})
                self.console.print("trial 0 is the baseline: " + ", ".join(f"{k}={_fmt(v, k)}" for k, v in first.items()))
        done = _count(study, _DONE_STATES)
        # A different seed per start, so that a second worker (or a resumed study) does not
        # replay the first one's random startup points; deterministic for a given history.
        study.sampler = make_sampler(cfg.search, seed=self.sampler_seed + len(study.trials))
        self._describe(study, done)
        self.out.mkdir(parents=True, exist_ok=True)
        if done < self.target:
            _ready_tracking(cfg.tracking)
            with track.start_run(cfg.tracking, f"{cfg.name}/tune", tags={"tuneproof.stage": "tune", "optuna.study": self.name}) as parent:
                self.parent_id = parent.run_id
                track.log_params(parent, {"study": self.name, "storage": self.shown_url, "n_trials": self.target,
                                          "sampler": cfg.search.sampler, "pruner": cfg.search.pruner,
                                          **{f"space.{k}": _show_range(v) for k, v in self.space.items()}})  # fmt: skip
                stop = MaxTrialsCallback(self.target, states=(TrialState.COMPLETE, TrialState.PRUNED))
                timeout = cfg.search.timeout_minutes * 60 if cfg.search.timeout_minutes else None
                study.optimize(self._objective, timeout=timeout, callbacks=[stop, self._failure_guard], gc_after_trial=True)
                # Trials of dead workers that came back as WAITING (RetryFailedTrialCallback): run them too.
                optuna.storages.fail_stale_trials(study)
                waiting = _count(study, ("WAITING",))
                if waiting:
                    self.console.print(f"running {waiting} retried trial(s) of a dead worker")
                    study.optimize(self._objective, n_trials=waiting, callbacks=[self._failure_guard], gc_after_trial=True)
                result = self._finish(study, done)
                track.log_metrics(parent, {"best_val_loss": result.best_value})
                track.log_params(parent, {f"best.{k}": v for k, v in result.best_params.items()})
                for path in (result.best_yaml, result.trials_json, self.out / "importances.json"):
                    track.log_artifact(parent, path)
        else:
            result = self._finish(study, done)
        _dist.share(None)  # tell the other ranks (if any) that the search is over
        return result

    def _describe(self, study: Any, done: int) -> None:
        for name, where in self.origin.items():
            if where.startswith("lr sweep"):
                self.console.print(f"lr range {_show_range(self.space[name])} from the {where}")
        left = max(0, self.target - done)
        counts = _counts(study)
        self.console.print(
            f"study {self.name!r} in {self.shown_url}: {done} trial(s) already done "
            f"({counts.get('COMPLETE', 0)} complete, {counts.get('PRUNED', 0)} pruned, {counts.get('FAIL', 0)} failed); "
            + (f"running up to {left} more for {self.target} in all" if left else f"the {self.target} requested are done")
        )

    def _failure_guard(self, study: Any, trial: Any) -> None:
        from optuna.trial import TrialState

        if trial.state == TrialState.FAIL:
            self.failures += 1
            if self.failures >= max(3, self.target):
                self.console.print(f"[red]{self.failures} trials failed in this worker; stopping the search (see trials.json)[/red]")
                study.stop()

    def _objective(self, trial: Any) -> float:
        import optuna

        from tuneproof.search import _dist
        from tuneproof.search._common import finish_child_run, prune_outputs
        from tuneproof.search._optuna import OptunaPruningCallback
        from tuneproof.search._space import apply_params, suggest
        from tuneproof.train import train

        params = _dist.share(suggest(trial, self.space))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        out = self.out / "trials" / f"trial-{trial.number:04d}"
        out.mkdir(parents=True, exist_ok=True)
        (out / "params.json").write_text(json.dumps(params))  # what this rank trained with
        trial_cfg, scale = equal_examples(apply_params(self.base, params), self.base)
        # The objective is the trial's best val loss (smooth, where a short trial's accuracy is
        # coarse); the final training still picks its checkpoint by train.early_stopping.monitor.
        trial_cfg["train"]["early_stopping"] = {**trial_cfg["train"]["early_stopping"], "monitor": "val_loss"}
        callback = OptunaPruningCallback(trial, decide=_dist.share, step_scale=scale)
        shown = ", ".join(f"{k}={_fmt(v, k)}" for k, v in params.items())
        steps_note = f" ({trial_cfg['train']['max_steps']} steps: the examples of {self.base['train']['max_steps']} at the config's batch)" \
            if scale != 1 and trial_cfg["train"].get("max_steps") else ""
        self.console.print(f"trial {trial.number}: {shown}{steps_note}")
        tags = {"optuna.trial": trial.number, "optuna.study": self.name, **{f"trial.{k}": v for k, v in params.items()}}
        try:
            res = train(
                trial_cfg, callbacks=[callback], parent_run_id=self.parent_id, output_dir=out,
                run_name=f"{self.cfg.name}/trial-{trial.number}", console=self.console,
            )  # fmt: skip
        except optuna.TrialPruned:
            step = callback.last_step
            trial.set_user_attr("pruned_at_step", step)
            trial.set_user_attr("mlflow_run_id", finish_child_run(self.cfg.tracking, out, "pruned", tags=tags))
            prune_outputs(out)
            self.console.print(f"trial {trial.number}: pruned at step {step}")
            raise
        except TuneproofError:
            raise  # bad input: every trial would fail the same way
        except Exception as exc:  # recorded as a failed trial; the study goes on
            if (disk := disk_error(exc)) is not None:
                raise disk from exc  # a full disk or an unwritable folder: every trial would fail alike
            error = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("error", error[:2000])
            trial.set_user_attr("mlflow_run_id", finish_child_run(self.cfg.tracking, out, "failed", error, tags=tags))
            prune_outputs(out)
            self.console.print(f"[yellow]trial {trial.number} failed: {error[:300]}[/yellow]")
            return float("nan")  # Optuna records a NaN value as a failed trial
        value = float(res.best_metrics.get("loss", float("nan")))
        trial.set_user_attr("best_step", res.best_step)
        trial.set_user_attr("global_step", res.global_step)
        trial.set_user_attr("stopped_early", res.stopped_early)
        trial.set_user_attr("final_metrics", res.final_metrics)
        trial.set_user_attr("mlflow_run_id", finish_child_run(self.cfg.tracking, out, "complete", tags=tags))
        prune_outputs(out)
        if not math.isfinite(value):
            trial.set_user_attr("error", "validation loss is not finite (the training diverged)")
        return value

    def _finish(self, study: Any, done_before: int) -> TuneResult:
        from optuna.trial import TrialState

        trials = [_trial_record(t) for t in study.trials]
        trials_json = self.out / "trials.json"
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write(trials_json, json.dumps({"study": self.name, "storage": self.shown_url, "trials": trials}, indent=1))
        complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
        if not complete:
            raise TuneproofError(
                f"study {self.name!r}: no trial completed ({_counts(study)}); the trials and their errors are in "
                f"{trials_json}. Fix: check that `tuneproof train` works on this config, or set search.pruner: none."
            )
        best = study.best_trial
        best_yaml = self.out / "best.yaml"
        from tuneproof.search._space import apply_params

        best_cfg = load_config(apply_params(self.base, best.params))
        atomic_write(
            best_yaml,
            f"# tuneproof tune: study {self.name!r}, best trial {best.number}, val loss {best.value:.6g}\n"
            f"# params: {json.dumps(best.params)}\n" + best_cfg.to_yaml()
        )
        importances, note = _importances(study, len(complete))
        atomic_write(self.out / "importances.json", json.dumps({"importances": importances, "note": note}, indent=1))
        self._table(study, best.number, importances, note)
        return TuneResult(
            study_name=self.name,
            storage=self.shown_url,
            best_params=dict(best.params),
            best_value=float(best.value),
            best_trial=best.number,
            best_yaml=best_yaml,
            importances=importances,
            importances_note=note,
            trials_json=trials_json,
            counts=_counts(study),
            already_done=done_before,
            space={k: {"range": _show_range(v), "from": self.origin[k]} for k, v in self.space.items()},
            mlflow_run_id=self.parent_id,
        )

    def _table(self, study: Any, best: int, importances: dict | None, note: str | None) -> None:
        self.console.print(trials_table(study, list(self.space), best, f"study {self.name}: {len(study.trials)} trials"))
        if importances:
            self.console.print("importances: " + ", ".join(f"{k} {v:.2f}" for k, v in importances.items()))
        else:
            self.console.print(f"importances: not computed ({note})")
        self.console.print(f"best trial {best}; config for `tuneproof train`: {self.out / 'best.yaml'}")


def _follow(cfg: RunConfig, console: Any) -> None:
    """Non-zero rank: train with whatever rank 0 broadcasts until it broadcasts None."""
    import optuna

    from tuneproof.search import _dist
    from tuneproof.search._common import prune_outputs
    from tuneproof.search._optuna import OptunaPruningCallback
    from tuneproof.search._space import apply_params
    from tuneproof.train import train

    base, n = cfg.model_dump(mode="json"), 0
    _ready_tracking(cfg.tracking)
    while (params := _dist.share(None)) is not None:
        out = cfg.run_dir / "tune" / "trials" / f"rank{_dist.rank()}-{n:04d}"
        (out).mkdir(parents=True, exist_ok=True)
        (out / "params.json").write_text(json.dumps(params))
        trial_cfg, scale = equal_examples(apply_params(base, params), base)  # the same steps as rank 0
        try:
            train(trial_cfg, callbacks=[OptunaPruningCallback(None, decide=_dist.share, step_scale=scale)], output_dir=out,
                  run_name=f"{cfg.name}/rank{_dist.rank()}-{n}", console=console)  # fmt: skip
        except optuna.TrialPruned:
            pass
        prune_outputs(out)
        n += 1


def _ready_tracking(tracking: Any) -> None:
    """Create the MLflow store and experiment under a file lock.

    Two workers that start together on one machine would otherwise both create the SQLite
    store's tables, and one fails with "table experiments already exists".
    """
    import fcntl

    from tuneproof import track

    uri = tracking.resolved_uri()
    if not uri.startswith("sqlite:///"):
        return
    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.parent / (db.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            track._experiment_id(track._client(uri), tracking.experiment)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _count(study: Any, states: Sequence[str]) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state.name in states)


def _counts(study: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def _trial_record(t: Any) -> dict[str, Any]:
    return {
        "number": t.number,
        "state": t.state.name,
        "value": t.value if t.value is None or math.isfinite(t.value) else None,
        "params": t.params,
        "curve": sorted([int(s), float(v)] for s, v in t.intermediate_values.items()),
        "user_attrs": t.user_attrs,
        "retry_of": t.system_attrs.get("failed_trial"),
        "start": t.datetime_start.isoformat() if t.datetime_start else None,
        "end": t.datetime_complete.isoformat() if t.datetime_complete else None,
        "seconds": t.duration.total_seconds() if t.duration else None,
    }


MIN_TRIALS_FOR_IMPORTANCES = 4


def _importances(study: Any, n_complete: int) -> tuple[dict[str, float] | None, str | None]:
    import optuna

    # fANOVA fits a forest to the trials: from two or three points it returns confident-looking noise.
    if n_complete < MIN_TRIALS_FOR_IMPORTANCES:
        return None, (f"only {n_complete} complete trial(s); importances need at least {MIN_TRIALS_FOR_IMPORTANCES} "
                      "(fewer give noise)")  # fmt: skip
    try:
        imp = optuna.importance.get_param_importances(study)
        return {k: float(v) for k, v in imp.items()}, None
    except Exception as exc:  # e.g. every complete trial had the same value
        return None, f"optuna.importance failed: {type(exc).__name__}: {exc}"


def _show_range(r: Any) -> str:
    if r.choices is not None:
        return f"choices {r.choices}"
    return f"[{r.low:g}, {r.high:g}]" + (" log" if r.log else "")


def _fmt(v: Any, name: str = "") -> str:
    return fmt_value(v, rate=name == "lr")


def trials_table(study: Any, names: Sequence[str], best: int, title: str) -> Any:
    """The study's trials as a rich table that reads the same in a terminal, a pipe or a log file.

    Values are short and never wrap (a rate folded over two lines read as "0.000"); headers
    take two short lines and columns are one space apart, so the default LoRA space's 11
    columns fit 80 characters, the width rich assumes when the output is not a terminal.
    """
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, padding=0)
    for col in ["#", "state", "val\nloss", *(short_header(n) for n in names)]:
        table.add_column(col, no_wrap=True)
    for t in study.trials:
        value = f"{t.value:.4f}" if t.value is not None and math.isfinite(t.value) else "-"
        row = [str(t.number), t.state.name.lower(), value, *(_fmt(t.params.get(n, ""), n) for n in names)]
        table.add_row(*row, style="bold green" if t.number == best else None)
    return table
