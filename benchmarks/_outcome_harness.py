"""The outcome benchmark's machinery: scenarios, methods, resumable cells, scoring and compute.

``benchmarks/outcome.py`` is the command line; this module holds the logic so that the
plumbing test can run it on a synthetic scenario with the tiny random models.

A *cell* is one (scenario, seed, method) or one oracle grid point (scenario, seed,
``oracle_point``, lr). Each finished cell is one line appended to ``results.jsonl``; a rerun
skips every cell already there, so a long suite continues across invocations. Every
method of one (scenario, seed) is scored on the same clean ``test.jsonl``, which no
method trains or tunes on.

Compute is training steps x batch size x grad_accum x the mean non-padding tokens per
training example (measured by the engine on that method's own training split), summed
over every training a method runs: for tuneproof the lr sweep, every search trial (a
pruned trial counts the steps it ran before it was cut) and the final training.
Evaluation passes (validation loss, test scoring) are not counted.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

METHODS = ("naive", "tuneproof", "tuneproof_nocurate", "naive_matched", "oracle")
NAIVE_LR = 1e-5
VAL_FRACTION = 0.1


@dataclass
class Scenario:
    """One realistic fine-tuning project: data, model and the budget knobs every method shares.

    ``build(out_dir, seed)`` writes pool.jsonl, test.jsonl and (optionally) refs.jsonl.
    ``epochs`` is the training budget of naive and of tuneproof's final training alike;
    the search budget (sweep, trials) is tuneproof's own and is counted in its compute.
    """

    name: str
    task: str
    metric: str
    model: str
    method: str
    build: Callable[[Path, int], dict[str, Any]]
    max_length: int
    batch_size: int
    epochs: float
    sweep_lrs: list[float] | None
    tune_trials: int
    oracle_lrs: list[float]
    oracle_epochs: int
    sweep_steps: int | None = None  # None: tuneproof's default, a share of pipeline.search_budget
    tune_steps: int | None = None
    max_new_tokens: int = 16
    lora_r: int = 16
    audit: dict[str, Any] = field(default_factory=dict)
    use_refs: bool = True
    domain_text: str | None = None  # a one-sentence domain description (data.domain_text) instead of references
    bf16: Any = "auto"

    def knobs(self) -> dict[str, Any]:
        return {"model": self.model, "method": self.method, "max_length": self.max_length, "batch_size": self.batch_size,
                "epochs": self.epochs, "naive_lr": NAIVE_LR, "sweep_lrs": self.sweep_lrs, "sweep_steps": self.sweep_steps,
                "tune_trials": self.tune_trials, "tune_steps": self.tune_steps, "oracle_lrs": self.oracle_lrs,
                "oracle_epochs": self.oracle_epochs, "metric": self.metric, "max_new_tokens": self.max_new_tokens}  # fmt: skip


# ---- results file -----------------------------------------------------------------------


def cell_key(row: dict[str, Any]) -> tuple:
    return (row["scenario"], row["seed"], row["method"], row.get("lr"))


def read_results(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a kill: that cell reruns
    return out


def append_result(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def git_commit() -> str:
    """The checkout's short commit, with ``+dirty`` when tracked files differ from it: what produced a row."""
    import subprocess

    here = Path(__file__).resolve().parent
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True)
    return done.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def conditions() -> dict[str, Any]:
    import torch

    return {"threads": torch.get_num_threads(), "load": [round(x, 2) for x in os.getloadavg()],
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": git_commit()}  # fmt: skip


# ---- configs ----------------------------------------------------------------------------


def _model_section(sc: Scenario) -> dict[str, Any]:
    m: dict[str, Any] = {"name": sc.model, "method": sc.method, "max_length": sc.max_length}
    if sc.method == "lora":
        m["lora"] = {"r": sc.lora_r, "dropout": 0.05}
    return m


def tuneproof_config(sc: Scenario, seed: int, data: dict[str, Path], runs: Path, *, curate: bool) -> dict[str, Any]:
    """``tuneproof run`` with its defaults; only the scenario's budget knobs are set."""
    name = f"{sc.name}-s{seed}-{'tp' if curate else 'tp-nocurate'}"
    cfg: dict[str, Any] = {
        "name": name, "task": sc.task,
        "data": {"path": str(data["pool"]), "eval_path": str(data["test"]), "val_fraction": VAL_FRACTION},
        "model": _model_section(sc),
        "train": {"batch_size": sc.batch_size, "epochs": sc.epochs, "seed": seed, "bf16": sc.bf16},
        "eval": {"metric": sc.metric, "max_new_tokens": sc.max_new_tokens},
        "pipeline": {"sweep_lrs": sc.sweep_lrs, "sweep_steps": sc.sweep_steps, "tune_trials": sc.tune_trials,
                     "tune_steps": sc.tune_steps},  # unset steps: the search budget's share (pipeline.search_budget)
        "tracking": {"runs_dir": str(runs)},
    }  # fmt: skip
    if data.get("refs") and sc.use_refs:
        cfg["data"]["domain"] = str(data["refs"])
    elif sc.domain_text:
        cfg["data"]["domain_text"] = sc.domain_text
    if sc.audit:
        cfg["audit"] = copy.deepcopy(sc.audit)
    if not curate:
        cfg["pipeline"]["stages"] = {"audit": False, "curate": False}
    return cfg


def _train_config(sc: Scenario, seed: int, data: dict[str, Path], runs: Path, name: str, *, lr: float, epochs: float,
                  early_stopping: bool, eval_steps: int) -> dict[str, Any]:  # fmt: skip
    return {
        "name": name, "task": sc.task,
        "data": {"path": str(data["naive_train"]), "eval_path": str(data["naive_val"])},
        "model": _model_section(sc),
        "train": {"lr": lr, "batch_size": sc.batch_size, "epochs": epochs, "seed": seed, "bf16": sc.bf16,
                  "eval_steps": eval_steps, "early_stopping": {"enabled": early_stopping}},
        "tracking": {"runs_dir": str(runs)},
    }  # fmt: skip


def _min_effect(sc: Scenario, seed: int, data: dict[str, Path], runs: Path) -> float:
    from tuneproof.config import load_config
    from tuneproof.pipeline._preflight import min_effect

    return min_effect(load_config(tuneproof_config(sc, seed, data, runs, curate=True)))


def _eval_config(sc: Scenario, me: float) -> Any:
    from tuneproof.config import EvalConfig

    return EvalConfig(metric=sc.metric, max_new_tokens=sc.max_new_tokens, min_effect=me)


# ---- data per (scenario, seed) ------------------------------------------------------------


def prepare_data(sc: Scenario, seed: int, work: Path) -> dict[str, Path]:
    """The scenario's files plus naive's train/val cut: the very cut `tuneproof run` makes without curation."""
    from tuneproof.data import load_records
    from tuneproof.train import split_records

    d = work / "data"
    sc.build(d, seed)
    files = {"pool": d / "pool.jsonl", "test": d / "test.jsonl"}
    if (d / "refs.jsonl").is_file():
        files["refs"] = d / "refs.jsonl"
    files["naive_train"], files["naive_val"] = d / "naive_train.jsonl", d / "naive_val.jsonl"
    if not (files["naive_train"].is_file() and files["naive_val"].is_file()):
        recs = load_records(files["pool"]).records
        s = split_records(recs, val_fraction=VAL_FRACTION, test_fraction=0.0, seed=seed, stratify=sc.task == "classification")
        for part in ("train", "val"):
            tmp = d / f"naive_{part}.tmp"
            with tmp.open("w", encoding="utf-8") as f:
                for r in getattr(s, part):
                    f.write(json.dumps({"id": r.id, **r.fields, **r.extra}, ensure_ascii=False, default=str) + "\n")
            tmp.replace(d / f"naive_{part}.jsonl")
    return files


def _count_lines(path: Path) -> int:
    with path.open(encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


# ---- compute ----------------------------------------------------------------------------


def _tokens_per_example(train_json: Path) -> float:
    d = json.loads(train_json.read_text())["data"]
    return d["train_tokens"] / max(1, d["train_records"])


def _train_compute(res: Any, batch_size: int, grad_accum: int = 1) -> dict[str, Any]:
    tpe = res.data["train_tokens"] / max(1, res.data["train_records"])
    return {"steps": res.global_step, "tokens": res.global_step * batch_size * grad_accum * tpe, "tokens_per_example": tpe}


def pipeline_compute(run_dir: Path, cfg: dict[str, Any]) -> dict[str, Any]:
    """Steps and tokens of every training a `tuneproof run` did: sweep, curation A/B arms, all trials, final training."""
    import yaml

    tr = run_dir / "train" / "train.json"
    tpe = _tokens_per_example(tr)
    bs0, ga0 = cfg["train"]["batch_size"], cfg["train"].get("grad_accum", 1)
    parts: dict[str, dict[str, float]] = {}
    sweep = run_dir / "lr_sweep" / "lr_sweep.json"
    if sweep.is_file():
        pts = json.loads(sweep.read_text())["points"]
        steps = sum(int(p.get("steps") or 0) for p in pts)
        parts["lr_sweep"] = {"steps": steps, "tokens": steps * bs0 * ga0 * tpe, "runs": len(pts)}
    trials = run_dir / "tune" / "trials.json"
    if trials.is_file():
        rows = json.loads(trials.read_text())["trials"]
        steps = tokens = 0.0
        states: dict[str, int] = {}
        for t in rows:
            ua = t.get("user_attrs") or {}
            n = ua.get("global_step") if t["state"] == "COMPLETE" else ua.get("pruned_at_step") if t["state"] == "PRUNED" else None
            if n is None and t.get("curve"):  # failed trial: the last step it reported
                n = t["curve"][-1][0]
            n = int(n or 0)
            steps += n
            tokens += n * int(t["params"].get("batch_size", bs0)) * ga0 * tpe
            states[t["state"]] = states.get(t["state"], 0) + 1
        parts["tune"] = {"steps": steps, "tokens": tokens, "runs": len(rows), "states": states}
    ab = run_dir / "curation_ab" / "ab.json"
    if ab.is_file() and not json.loads(ab.read_text()).get("skipped"):
        arms = json.loads(ab.read_text()).get("arms") or {}
        steps = sum(int(a.get("steps") or 0) for a in arms.values())
        parts["curation_ab"] = {"steps": steps, "tokens": steps * bs0 * ga0 * tpe, "runs": len(arms)}
    best = run_dir / "tune" / "best.yaml"
    bs, ga = bs0, ga0
    if best.is_file():
        b = yaml.safe_load(best.read_text())
        bs, ga = b["train"]["batch_size"], b["train"].get("grad_accum", 1)
    final = json.loads(tr.read_text())
    parts["train"] = {"steps": final["global_step"], "tokens": final["global_step"] * bs * ga * tpe, "batch_size": bs,
                      "stopped_early": final.get("stopped_early"), "best_step": final.get("best_step")}  # fmt: skip
    return {"steps": sum(p["steps"] for p in parts.values()), "tokens": sum(p["tokens"] for p in parts.values()),
            "tokens_per_example": tpe, "parts": parts}  # fmt: skip


# ---- scoring ----------------------------------------------------------------------------


def _ev_row(ev: dict[str, Any]) -> dict[str, Any]:
    d = ev["delta"]
    hib = ev["higher_is_better"]
    beats = (d["ci_low"] > 0) if hib else (d["ci_high"] < 0)
    return {"test_metric": d["tuned"], "reference": ev["reference"], "reference_metric": d["reference"], "delta": d["value"],
            "ci_low": d["ci_low"], "ci_high": d["ci_high"], "verdict": ev["verdict"], "ci_excludes_zero": bool(beats),
            "higher_is_better": hib, "n_test": ev["n_records"]}  # fmt: skip


def full_evaluate(sc: Scenario, seed: int, model_dir: Path, data: dict[str, Path], out: Path, me: float, console: Any) -> dict[str, Any]:
    """`tuneproof.evaluate` exactly as the pipeline calls it (reference rescored, bootstrap, verdict)."""
    from tuneproof.evaluate import evaluate

    # Scoring precision as the pipeline's run_evaluate chooses it (train.bf16 on the CPU), for
    # parity. (Before 2026-11-30 03:30 UTC the pipeline scored in fp32 by a bug, and so did this.)
    evaluate(sc.model, model_dir, data["test"], out, task=sc.task, config=_eval_config(sc, me),
             train=data["naive_train"] if sc.task == "classification" else None, seed=seed,
             max_length=sc.max_length, bf16=scoring_bf16(sc), console=console)  # fmt: skip
    return json.loads((out / "eval.json").read_text())


def scoring_bf16(sc: Scenario) -> bool:
    from tuneproof.train import resolve_bf16

    return resolve_bf16(sc.bf16, on_gpu=False)


def _reference_scores(records_jsonl: Path, metric: str) -> tuple[str, list[float]]:
    rows = [json.loads(x) for x in records_jsonl.read_text().split("\n") if x.strip()]
    ref = "probe" if "probe" in rows[0] else "base"
    key = metric if metric in rows[0][ref] else "accuracy"
    return ref, [r[ref][key] for r in rows]


def score_tuned_only(sc: Scenario, seed: int, model_dir: Path, data: dict[str, Path], reference_records: Path,
                     me: float) -> dict[str, Any]:  # fmt: skip
    """Score one more candidate against a reference already scored on the same test records.

    Uses tuneproof.evaluate's own pieces (loading, greedy generation / classification,
    per-record metrics, paired bootstrap with the same seed, verdict), so the numbers equal a
    full `evaluate` call; only the reference's pass is not repeated. The plumbing test checks
    the equality. Per-record metrics only (exact_match, token_f1, rouge_l, accuracy, nll).
    """
    import numpy as np

    from tuneproof.data import load_records
    from tuneproof.evaluate._api import generation_scores
    from tuneproof.evaluate._bootstrap import paired_bootstrap_means, verdict
    from tuneproof.evaluate._loading import load_tuned, read_labels
    from tuneproof.evaluate._metrics import METRICS

    records = load_records(data["test"]).records
    ref_name, ref = _reference_scores(reference_records, sc.metric)
    if sc.task == "sft":
        from tuneproof.evaluate._sft import generate, score_nll, sft_examples

        examples = sft_examples(records, str(data["test"]))
        model, tok = load_tuned(model_dir, sc.model, "sft", seed=seed)
        model.eval()
        if sc.metric == "nll":
            nll, _, _ = score_nll(model, tok, examples, max_length=sc.max_length, batch_size=8, bf16=scoring_bf16(sc))
            tuned = np.asarray(nll)
        else:
            outs, _ = generate(model, tok, examples, max_new_tokens=sc.max_new_tokens, max_length=sc.max_length,
                               batch_size=8, bf16=scoring_bf16(sc))  # fmt: skip
            tuned = generation_scores(outs, [ex.references for ex in examples], sc.metric)[sc.metric]
    else:
        from tuneproof.evaluate._classify import label_ids, predict_proba

        labels = read_labels(model_dir)
        model, tok = load_tuned(model_dir, sc.model, "classification", labels=labels, seed=seed)
        proba = predict_proba(model, tok, [str(r.text) for r in records], max_length=sc.max_length, batch_size=8)
        tuned = (proba.argmax(1) == label_ids(records, labels, str(data["test"]))).astype(float)
    del model
    info = METRICS[sc.metric if sc.task == "sft" else "accuracy"]
    delta = paired_bootstrap_means(sc.metric, np.asarray(ref, dtype=float), np.asarray(tuned, dtype=float),
                                   higher_is_better=info.higher_is_better, resamples=1000, confidence=0.95, seed=seed)  # fmt: skip
    word, _ = verdict(delta, me)
    ev = {"delta": delta.to_dict(), "higher_is_better": info.higher_is_better, "reference": ref_name, "verdict": word,
          "n_records": len(records)}  # fmt: skip
    return _ev_row(ev)


def score_candidate(sc: Scenario, seed: int, model_dir: Path, data: dict[str, Path], work: Path, me: float,
                    console: Any) -> dict[str, Any]:  # fmt: skip
    """Score a model trained outside the pipeline (naive, oracle) on the scenario's test file.

    The first call per (scenario, seed) runs the full `evaluate` into ``work/reference``; later
    calls reuse its reference scores (base generations or the probe), which are the same for
    every such model, and score only the tuned side.
    """
    ref_records = work / "reference" / "records.jsonl"
    if not ref_records.is_file():
        return _ev_row(full_evaluate(sc, seed, model_dir, data, work / "reference", me, console))
    return score_tuned_only(sc, seed, model_dir, data, ref_records, me)


# ---- methods ----------------------------------------------------------------------------


def _steps_per_epoch(sc: Scenario, data: dict[str, Path]) -> int:
    return max(1, math.ceil(_count_lines(data["naive_train"]) / sc.batch_size))


def run_naive(sc: Scenario, seed: int, data: dict[str, Path], work: Path, me: float, console: Any, *,
              epochs: float, tag: str) -> dict[str, Any]:  # fmt: skip
    """The naive recipe: raw data, lr 1e-5, a fixed number of epochs, no early stopping, no search."""
    from tuneproof.train import train

    out = work / tag
    total = max(1, math.ceil(_steps_per_epoch(sc, data) * epochs))
    cfg = _train_config(sc, seed, data, work / "runs", f"{sc.name}-s{seed}-{tag}", lr=NAIVE_LR, epochs=epochs,
                        early_stopping=False, eval_steps=max(1, total // 2))  # fmt: skip
    res = train(cfg, output_dir=out / "train", console=console)
    ev = score_candidate(sc, seed, res.model_dir, data, work, me, console)
    shutil.rmtree(out / "train" / "checkpoints", ignore_errors=True)
    return {**ev, "compute": _train_compute(res, sc.batch_size), "details": {"lr": NAIVE_LR, "epochs": epochs},
            "eval_dir": str(work / "reference")}  # fmt: skip


def run_tuneproof(sc: Scenario, seed: int, data: dict[str, Path], work: Path, console: Any, *, curate: bool) -> dict[str, Any]:
    from tuneproof.pipeline import run

    cfg = tuneproof_config(sc, seed, data, work / "runs", curate=curate)
    res = run(cfg, console=console)
    ev = json.loads((res.run_dir / "evaluate" / "eval.json").read_text())
    dec = res.decision or {}
    comp = pipeline_compute(res.run_dir, cfg)
    details: dict[str, Any] = {"headline": dec.get("headline"), "causes": [c.get("code") for c in dec.get("causes", [])]}
    best = res.run_dir / "tune" / "best.yaml"
    if best.is_file():
        first = best.read_text().splitlines()[1]
        details["best_params"] = first.removeprefix("# params: ")
    else:  # no search trials: the final training ran the sweep's rate for it
        sweep, trained = res.run_dir / "lr_sweep" / "lr_sweep.json", res.run_dir / "train" / "train.json"
        if sweep.is_file() and trained.is_file():
            details["best_params"] = json.dumps({"lr": json.loads(trained.read_text())["data"].get("lr"), "search": "lr sweep only",
                                                 "sweep_best": json.loads(sweep.read_text()).get("best_lr")})  # fmt: skip
    man = res.run_dir / "curate" / "manifest.json"
    if curate and man.is_file():
        c = json.loads(man.read_text())["counts"]
        details["curate"] = {"kept": c["kept"], "removed": c["removed"], "by_check": c["removed_by_check"]}
        details["removed_origins"] = _removed_origins(res.run_dir / "curate" / "removed.jsonl")
        details["budget_suspended"] = (json.loads(man.read_text()).get("budget") or {}).get("suspended")
    details.update(_interventions(res.run_dir, ev))
    for p in res.run_dir.glob("*/checkpoints"):
        shutil.rmtree(p, ignore_errors=True)
    shutil.rmtree(res.run_dir / "model", ignore_errors=True)
    return {**_ev_row(ev), "shipped": bool(dec.get("ship")), "compute": comp, "details": details,
            "run_dir": str(res.run_dir)}  # fmt: skip


def _interventions(run_dir: Path, ev: dict[str, Any]) -> dict[str, Any]:
    """The curation A/B's decision and numbers, and each cheap reference's score and verdict."""
    out: dict[str, Any] = {}
    ab = run_dir / "curation_ab" / "ab.json"
    if ab.is_file():
        a = json.loads(ab.read_text())
        out["curation_ab"] = {k: a.get(k) for k in ("decision", "skipped", "val_loss", "difference", "ci", "noise", "steps", "lr")}
    refs = ev.get("references") or {}
    out["references"] = {name: {"score": r.get("score"), "verdict": r.get("verdict"), "gating": r.get("gating")}
                         for name, r in refs.items()}  # fmt: skip
    return out


def _removed_origins(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").split("\n"):
            if line.strip():
                row = json.loads(line)
                o = str((row.get("record") or row).get("origin", "?"))
                fam = o if o.endswith("flipped") else o.split("/")[0]
                out[fam] = out.get(fam, 0) + 1
    return out


class _EpochSnapshots:
    """A Trainer callback that saves the model at the end of every epoch (the oracle's epoch axis).

    Trainer also calls ``on_epoch_end`` when early stopping ends an epoch part-way; that
    snapshot is kept under its own label and folder (each folder is named by its step, so
    no snapshot overwrites another).
    """

    def __init__(self, out: Path):
        from transformers import TrainerCallback

        self.out = out
        self.saved: list[tuple[str, int, Path]] = []
        outer = self

        class _Cb(TrainerCallback):
            def on_epoch_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
                if any(step == state.global_step for _, step, _ in outer.saved):
                    return
                epoch = float(state.epoch or 0)
                whole = abs(epoch - round(epoch)) < 1e-6
                label = f"epoch {round(epoch)}" if whole else f"stopped at epoch {epoch:.2f}"
                d = outer.out / f"step-{state.global_step}"
                model.save_pretrained(str(d))
                outer.saved.append((label, state.global_step, d))

        self.callback = _Cb()


def run_oracle_point(sc: Scenario, seed: int, lr: float, data: dict[str, Path], work: Path, me: float,
                     console: Any) -> dict[str, Any]:  # fmt: skip
    """One learning rate: a long early-stopped run; every epoch's snapshot and the best checkpoint scored on test."""
    from tuneproof.train import train

    out = work / f"oracle-lr{lr:g}"
    spe = _steps_per_epoch(sc, data)
    cfg = _train_config(sc, seed, data, work / "runs", f"{sc.name}-s{seed}-oracle-{lr:g}", lr=lr, epochs=sc.oracle_epochs,
                        early_stopping=True, eval_steps=max(1, spe // 2))  # fmt: skip
    snaps = _EpochSnapshots(out / "snapshots")
    res = train(cfg, output_dir=out / "train", callbacks=[snaps.callback], console=console)
    cands: list[tuple[str, int, Path]] = list(snaps.saved)
    cands.append((f"early-stopped best (step {res.best_step})", res.best_step or res.global_step, res.model_dir))
    for _, _, d in cands[:-1]:  # tokenizer (chat template included) and labels, as the engine saves them with the model
        for f in res.model_dir.iterdir():
            if f.is_file() and not (d / f.name).exists():
                shutil.copy2(f, d / f.name)
    scored = []
    for label, step, d in cands:
        same = next((c for c in scored if c["step"] == step), None)  # the best checkpoint is that epoch's weights
        ev = {k: v for k, v in same.items() if k not in ("candidate", "step")} if same else score_candidate(sc, seed, d, data, work, me, console)
        scored.append({"candidate": label, "step": step, **ev})
        console.print(f"  oracle lr {lr:g} {label}: {sc.metric} {ev['test_metric']:.4f} (delta {ev['delta']:+.4f}, "
                      f"CI [{ev['ci_low']:+.4f}, {ev['ci_high']:+.4f}], {ev['verdict']})", highlight=False)  # fmt: skip
    sign = 1 if scored[0]["higher_is_better"] else -1
    best = max(scored, key=lambda s: sign * s["test_metric"])
    shutil.rmtree(out, ignore_errors=True)  # snapshots and checkpoints: the scores are what we keep
    return {**best, "proven": any(s["verdict"] == "improved" for s in scored),
            "any_ci_excludes_zero": any(s["ci_excludes_zero"] for s in scored), "candidates": scored,
            "compute": _train_compute(res, sc.batch_size), "details": {"lr": lr, "epochs_max": sc.oracle_epochs,
            "stopped_early": res.stopped_early, "global_step": res.global_step, "steps_per_epoch": spe}}  # fmt: skip


def oracle_summary(points: list[dict[str, Any]]) -> dict[str, Any]:
    sign = 1 if points[0]["higher_is_better"] else -1
    best = max(points, key=lambda p: sign * p["test_metric"])
    keep = ("test_metric", "reference", "reference_metric", "delta", "ci_low", "ci_high", "verdict", "ci_excludes_zero",
            "higher_is_better", "n_test")  # fmt: skip
    return {**{k: best[k] for k in keep}, "proven": any(p["proven"] for p in points),
            "any_ci_excludes_zero": any(p["any_ci_excludes_zero"] for p in points),
            "compute": {"steps": sum(p["compute"]["steps"] for p in points), "tokens": sum(p["compute"]["tokens"] for p in points)},
            "details": {"best_lr": best["details"]["lr"], "best_candidate": best["candidate"], "grid_lrs": [p["details"]["lr"] for p in points]}}  # fmt: skip


# ---- the suite ----------------------------------------------------------------------------


def run_suite(scenarios: list[Scenario], seeds: list[int], methods: list[str], results_dir: Path, console: Any,
              *, suite: str = "custom", deadline: float | None = None,
              oracle_lrs: list[float] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Run every missing cell, appending each to ``results_dir/results.jsonl``; return the rows run now.

    ``deadline`` (a ``time.time()`` value): no cell starts after it; the one running finishes. A
    suite of hours (the SFT oracles: one cell per rate) can so be run in pieces that end in time.
    ``oracle_lrs``: run only these rates of each oracle grid now, in this order (each must be in
    the scenario's grid). The oracle's row still needs every rate of the grid.
    """
    for sc in scenarios:
        extra = [lr for lr in oracle_lrs or [] if lr not in sc.oracle_lrs]
        if "oracle" in methods and extra:
            raise ValueError(f"oracle rates {extra} are not in {sc.name}'s grid {sc.oracle_lrs}; pick from that grid")
    results = results_dir / "results.jsonl"
    done = {cell_key(r) for r in read_results(results)}
    ran: list[dict[str, Any]] = []
    for sc in scenarios:
        for seed in seeds:
            work = results_dir / "work" / f"{sc.name}-s{seed}"
            data: dict[str, Path] | None = None
            me: float | None = None
            for method in [m for m in METHODS if m in methods]:
                lrs = oracle_lrs if oracle_lrs is not None else sc.oracle_lrs
                todo = ([(method, lr) for lr in lrs] if method == "oracle" else [(method, None)])
                for m, lr in todo:
                    key = (sc.name, seed, "oracle_point" if m == "oracle" else m, lr)
                    if key in done:
                        continue
                    if deadline is not None and time.time() >= deadline:
                        console.print(f"past the deadline: cell {key} and the rest not started; rerun to continue")
                        return ran
                    if data is None:
                        data = prepare_data(sc, seed, work)
                        me = _min_effect(sc, seed, data, work / "runs")
                    assert me is not None
                    try:
                        row = _run_cell(sc, seed, m, lr, data, work, me, results, console)
                    except Exception as exc:  # one broken cell must not end a suite of hours; it reruns next time
                        import traceback

                        console.print(f"[red]cell {key} failed: {type(exc).__name__}: {exc}[/red]")
                        append_result(results_dir / "errors.jsonl", {"cell": list(key), "error": f"{type(exc).__name__}: {exc}",
                                                                     "traceback": traceback.format_exc()[-4000:], **conditions()})  # fmt: skip
                        continue
                    if row is not None:
                        append_result(results, row)
                        done.add(cell_key(row))
                        ran.append(row)
                if method == "oracle":
                    okey = (sc.name, seed, "oracle", None)
                    pts = [r for r in read_results(results) if r["scenario"] == sc.name and r["seed"] == seed
                           and r["method"] == "oracle_point" and r.get("lr") in sc.oracle_lrs]  # fmt: skip
                    if okey not in done and len(pts) == len(sc.oracle_lrs):
                        row = {"scenario": sc.name, "seed": seed, "method": "oracle", "lr": None, "suite": suite,
                               "metric": sc.metric, **oracle_summary(pts), "seconds": round(sum(p.get("seconds", 0) for p in pts), 1),
                               "knobs": sc.knobs(), **conditions()}  # fmt: skip
                        append_result(results, row)
                        done.add(cell_key(row))
                        ran.append(row)
    return ran


def _run_cell(sc: Scenario, seed: int, method: str, lr: float | None, data: dict[str, Path], work: Path, me: float,
              results: Path, console: Any) -> dict[str, Any] | None:  # fmt: skip
    label = f"{sc.name} seed {seed} {method}" + (f" lr {lr:g}" if lr is not None else "")
    start = conditions()
    console.rule(f"[bold]cell: {label}  (threads {start['threads']}, load {start['load']})")
    t0 = time.perf_counter()
    if method == "naive":
        out = run_naive(sc, seed, data, work, me, console, epochs=sc.epochs, tag="naive")
    elif method in ("tuneproof", "tuneproof_nocurate"):
        out = run_tuneproof(sc, seed, data, work, console, curate=method == "tuneproof")
    elif method == "naive_matched":
        rows = {r["method"]: r for r in read_results(results) if r["scenario"] == sc.name and r["seed"] == seed}
        if "tuneproof" not in rows or "naive" not in rows:
            console.print(f"{label}: needs the naive and tuneproof cells first; skipped for now")
            return None
        ratio = rows["tuneproof"]["compute"]["tokens"] / max(1.0, rows["naive"]["compute"]["tokens"])
        if ratio <= 1.0:
            out = {"status": "not_needed", "details": {"compute_ratio_tuneproof_over_naive": ratio}}
        else:
            out = run_naive(sc, seed, data, work, me, console, epochs=round(sc.epochs * ratio, 3), tag="naive-matched")
            out["details"]["compute_ratio_tuneproof_over_naive"] = ratio
    elif method == "oracle":
        assert lr is not None
        out = run_oracle_point(sc, seed, lr, data, work, me, console)
        method = "oracle_point"
    else:
        raise ValueError(f"unknown method {method!r}; methods: {METHODS}")
    seconds = time.perf_counter() - t0
    row = {"scenario": sc.name, "seed": seed, "method": method, "lr": lr, "metric": sc.metric, "min_effect": me,
           **out, "seconds": round(seconds, 1), "knobs": sc.knobs(), **start, "load_end": conditions()["load"]}  # fmt: skip
    if "test_metric" in row:
        console.print(f"[bold]{label}[/bold]: {sc.metric} {row['test_metric']:.4f} vs {row['reference']} "
                      f"{row['reference_metric']:.4f}, delta {row['delta']:+.4f} CI [{row['ci_low']:+.4f}, {row['ci_high']:+.4f}] "
                      f"{row['verdict']}; compute {row['compute']['tokens']:,.0f} tokens; {seconds:.0f} s", highlight=False)  # fmt: skip
    return row
