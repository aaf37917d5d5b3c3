"""Read a run directory into plain facts, one dict per report section (this is report.json).

Every input file may be missing or unreadable: a section then says ``not run`` with the
reason from ``pipeline.json`` when it has one, never raises.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Section id -> (title, the pipeline stages whose notes explain a missing section).
SECTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "verdict": ("Verdict", ("decision", "evaluate")),
    "preflight": ("Preflight risks", ("preflight",)),
    "audit": ("Data audit", ("audit", "curate")),
    "lr-sweep": ("Learning-rate sweep", ("lr_sweep", "lr-sweep")),
    "curation-ab": ("Curation A/B", ("curation_ab",)),
    "augment": ("Augmentation A/B", ("augment",)),
    "search": ("Hyperparameter search", ("tune",)),
    "training": ("Training curves", ("train",)),
    "evaluation": ("Evaluation", ("evaluate",)),
    "data-value": ("Data value (learning curve)", ("data_value",)),
    "forgetting": ("Forgetting", ("evaluate",)),
    "reproducibility": ("Reproducibility", ()),
}
EXAMPLES_PER_REASON = 3
WINS_LOSSES = 5
REPRO_PACKAGES = ("tuneproof", "torch", "transformers", "peft", "trl", "optuna", "mlflow", "datasets", "scikit-learn")


class _Reader:
    """Reads the run's files, remembering which could not be parsed (shown in the report)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.problems: list[str] = []

    def json(self, *candidates: str) -> tuple[Any, str | None]:
        for rel in candidates:
            path = self.run_dir / rel
            if path.is_file():
                try:
                    return json.loads(path.read_text(encoding="utf-8")), rel
                except (OSError, ValueError) as exc:
                    self.problems.append(f"{rel}: unreadable ({exc}); its section is shown as not run")
        return None, None

    def jsonl(self, rel: str, limit: int | None = None) -> list[dict[str, Any]]:
        path = self.run_dir / rel
        rows: list[dict[str, Any]] = []
        if not path.is_file():
            return rows
        try:
            with path.open(encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except ValueError as exc:
                        self.problems.append(f"{rel} line {n}: not JSON ({exc}); line skipped")
                        continue
                    if isinstance(row, dict):
                        rows.append(row)
                    if limit is not None and len(rows) >= limit:
                        break
        except OSError as exc:
            self.problems.append(f"{rel}: unreadable ({exc})")
        return rows

    def text(self, rel: str) -> str | None:
        path = self.run_dir / rel
        try:
            return path.read_text(encoding="utf-8") if path.is_file() else None
        except (OSError, UnicodeDecodeError) as exc:
            self.problems.append(f"{rel}: unreadable ({exc})")
            return None


def _not_run(reason: str) -> dict[str, Any]:
    return {"status": "not run", "reason": reason}


def _stage_reason(pipeline: dict[str, Any] | None, stages: tuple[str, ...], missing: str) -> str:
    """Why a section has no data: the pipeline's note for its stage, else which file is missing."""
    for stage in (pipeline or {}).get("stages", []) or []:
        if isinstance(stage, dict) and stage.get("name") in stages:
            status = stage.get("status", "unknown")
            note = stage.get("note") or ""
            if status in ("done", "skipped_unchanged"):
                return f"stage '{stage['name']}' is {status}, but {missing}"
            return f"stage '{stage['name']}' {status}" + (f": {note}" if note else "")
    return f"{missing} (no pipeline.json entry for this stage)" if pipeline else missing


def _record_text(row: dict[str, Any]) -> str:
    """A short readable rendering of a record's fields (raw text; the HTML layer escapes it)."""
    if not isinstance(row, dict):
        return str(row)
    parts = [f"{k}: {v}" for k, v in row.items() if k not in ("id",) and not isinstance(v, (dict, list))]
    text = "\n".join(parts) if parts else json.dumps(row, ensure_ascii=False)
    return text if len(text) <= 600 else text[:600] + " …"


def _verdict(r: _Reader, pipeline: Any, evaluation: dict[str, Any] | None) -> dict[str, Any]:
    decision, _ = r.json("decision.json")
    out: dict[str, Any] = {}
    if isinstance(decision, dict):
        out.update(
            status="ok",
            source="decision.json",
            ship=bool(decision.get("ship")),
            headline=decision.get("headline") or ("ship" if decision.get("ship") else "not proven: do not ship"),
            verdict=decision.get("verdict"),
            causes=[c for c in decision.get("causes") or [] if isinstance(c, dict)],
            model_path=decision.get("model_path"),
        )
    if evaluation and evaluation.get("status") == "ok":
        out.setdefault("status", "ok")
        out.setdefault("source", "evaluate/eval.json")
        out.setdefault("verdict", evaluation.get("verdict"))
        out.setdefault("headline", f"evaluation verdict: {evaluation.get('verdict')} (no decision.json: the run did not decide)")
        out["delta"] = evaluation.get("delta")
        out["verdict_reason"] = evaluation.get("verdict_reason")
    return out or _not_run(_stage_reason(pipeline, ("decision", "evaluate"), "neither decision.json nor evaluate/eval.json exists"))


def _preflight(r: _Reader, pipeline: Any) -> dict[str, Any]:
    data, _ = r.json("preflight/preflight.json")
    if not isinstance(data, dict):
        return _not_run(_stage_reason(pipeline, ("preflight",), "preflight/preflight.json is missing"))
    order = {"high": 0, "medium": 1, "low": 2}
    risks = sorted((x for x in data.get("risks") or [] if isinstance(x, dict)), key=lambda x: order.get(x.get("level"), 3))
    return {"status": "ok", "estimates": data.get("estimates") or {}, "min_detectable_effect": data.get("min_detectable_effect"), "risks": risks}


def _audit(r: _Reader, pipeline: Any) -> dict[str, Any]:
    audit, audit_rel = r.json("audit/audit.json", "curate/audit.json")
    manifest, _ = r.json("curate/manifest.json")
    if not isinstance(audit, dict) and not isinstance(manifest, dict):
        return _not_run(_stage_reason(pipeline, ("audit", "curate"), "neither audit/audit.json nor curate/manifest.json exists"))
    folder = (audit_rel or "audit/audit.json").split("/")[0]
    findings = r.jsonl(f"{folder}/findings.jsonl")
    # Record text: the removed rows carry the record as it was in the file.
    text_by_id = {row.get("id"): _record_text(row.get("record")) for row in r.jsonl("curate/removed.jsonl") if "record" in row}
    checks: dict[str, Any] = {}
    for name, info in ((audit or {}).get("checks") or {}).items():
        if not isinstance(info, dict):
            continue
        status = str(info.get("status", "unknown"))
        checks[name] = {
            "status": status,
            "findings": info.get("findings", 0 if status == "ran" else None),
            "records": info.get("records", 0 if status == "ran" else None),
            "by_reason": info.get("by_reason") or {},
            "examples": {},
        }
    # A check that ranks its findings (label_issue's ``rank``) shows its most suspicious
    # records first; the others keep file order (the sort is stable).
    for f in sorted(findings, key=lambda f: f.get("rank") if isinstance(f.get("rank"), int) else float("inf")):
        check, code = f.get("check"), f.get("code") or f.get("reason") or "?"
        entry = checks.setdefault(check, {"status": "ran", "findings": None, "records": None, "by_reason": {}, "examples": {}})
        examples = entry["examples"].setdefault(code, [])
        if len(examples) < EXAMPLES_PER_REASON:
            examples.append({"id": f.get("id"), "reason": f.get("reason"), "text": text_by_id.get(f.get("id"))}
                            | ({"rank": f["rank"]} if isinstance(f.get("rank"), int) else {}))
    missing = {x["id"] for c in checks.values() for exs in c["examples"].values() for x in exs if x["text"] is None}
    if missing and isinstance(manifest, dict):
        found = _texts_from_input(r, (manifest.get("input") or {}).get("path"), missing)
        for c in checks.values():
            for exs in c["examples"].values():
                for x in exs:
                    x["text"] = x["text"] if x["text"] is not None else found.get(x["id"])
    out: dict[str, Any] = {"status": "ok", "source": audit_rel, "checks": checks}
    if isinstance(audit, dict):
        stats = audit.get("stats") or {}
        out["stats"] = {k: stats.get(k) for k in ("source", "format", "schema", "rows", "records", "unreadable")}
        out["problems"] = stats.get("problems") or []
    if isinstance(manifest, dict):
        out["curation"] = manifest.get("counts") or {}
    split, _ = r.json("split/split.json")
    if isinstance(split, dict):
        out["split"] = {k: split.get(k) for k in ("counts", "stratified", "clusters_kept_together", "seed")}
    return out


def _texts_from_input(r: _Reader, path: Any, ids: set[Any]) -> dict[Any, str]:
    """Text of flagged-but-kept records, from the curated input file (removed.jsonl has only
    the removed ones). A missing or unreadable input is noted, not fatal."""
    if not path or not Path(path).is_file():
        r.problems.append(f"the audited input {path} is not here any more: examples of kept records show no text")
        return {}
    from tuneproof.data import load_records
    from tuneproof.errors import TuneproofError

    try:
        records = load_records(path).records
    except (TuneproofError, OSError) as exc:
        r.problems.append(f"the audited input {path} cannot be read ({exc}): examples of kept records show no text")
        return {}
    return {rec.id: _record_text(rec.fields) for rec in records if rec.id in ids}


def _lr_sweep(r: _Reader, pipeline: Any) -> dict[str, Any]:
    data, _ = r.json("lr_sweep/lr_sweep.json")
    if not isinstance(data, dict):
        return _not_run(_stage_reason(pipeline, ("lr_sweep", "lr-sweep"), "lr_sweep/lr_sweep.json is missing"))
    keys = ("best_lr", "train_lr", "horizon", "train_lr_note", "recommended", "edge", "warning", "method", "steps")
    return {"status": "ok", "points": [p for p in data.get("points") or [] if isinstance(p, dict)], **{k: data.get(k) for k in keys}}


def _curation_ab(r: _Reader, pipeline: Any) -> dict[str, Any]:
    data, _ = r.json("curation_ab/ab.json")
    if not isinstance(data, dict):
        return _not_run(_stage_reason(pipeline, ("curation_ab",), "curation_ab/ab.json is missing"))
    if data.get("skipped"):
        return _not_run(f"skipped: {data['skipped']}")
    keys = ("decision", "why", "val_loss", "difference", "ci", "noise", "confidence", "arms", "steps", "lr", "lr_source",
            "val_records", "removed", "added_to_raw", "excluded", "replication")  # fmt: skip
    return {"status": "ok", **{k: data.get(k) for k in keys}}


def _augment(r: _Reader, pipeline: Any) -> dict[str, Any]:
    data, _ = r.json("augment/augment.json")
    if not isinstance(data, dict):
        return _not_run(_stage_reason(pipeline, ("augment",), "augment/augment.json is missing"))
    keys = ("methods", "used", "why", "train_file", "base_records", "added", "steps", "lr", "lr_source", "val_records")
    return {"status": "ok", **{k: data.get(k) for k in keys}}


def _data_value(r: _Reader, pipeline: Any) -> dict[str, Any]:
    data, _ = r.json("data_value/data_value.json")
    if not isinstance(data, dict):
        return _not_run(_stage_reason(pipeline, ("data_value",), "data_value/data_value.json is missing"))
    keys = ("plan", "lr", "lr_source", "n_train", "n_val", "ranking", "base", "rows", "fit", "headline", "recommendation",
            "confidence", "seconds")  # fmt: skip
    return {"status": "ok", **{k: data.get(k) for k in keys}}


def _search(r: _Reader, pipeline: Any) -> dict[str, Any]:
    data, _ = r.json("tune/trials.json")
    skipped, _ = r.json("tune/skipped.json")
    if not isinstance(data, dict) and isinstance(skipped, dict) and skipped.get("reason"):
        return _not_run(f"skipped by the budget: {skipped['reason']}")
    if not isinstance(data, dict):
        return _not_run(_stage_reason(pipeline, ("tune",), "tune/trials.json is missing"))
    trials = []
    for t in data.get("trials") or []:
        if isinstance(t, dict):
            trials.append({k: t.get(k) for k in ("number", "state", "value", "params", "curve", "seconds")})
    imp, _ = r.json("tune/importances.json")
    imp = imp if isinstance(imp, dict) else {}
    done = [t for t in trials if t["state"] == "COMPLETE" and isinstance(t["value"], (int, float))]
    best = min(done, key=lambda t: t["value"]) if done else None
    return {
        "status": "ok",
        "study": data.get("study"),
        "n_trials": len(trials),
        "states": {s: sum(t["state"] == s for t in trials) for s in sorted({str(t["state"]) for t in trials})},
        "best": best,
        "trials": trials,
        "pruned": [t for t in trials if t["state"] == "PRUNED"],
        "importances": imp.get("importances") or {},
        "importances_note": imp.get("note") or (None if imp else "tune/importances.json is missing"),
    }


def _training(r: _Reader, pipeline: Any) -> dict[str, Any]:
    data, _ = r.json("train/train.json")
    if not isinstance(data, dict):
        return _not_run(_stage_reason(pipeline, ("train",), "train/train.json is missing"))
    guard = data.get("guard") or {}
    info = data.get("data") or {}
    choice, _ = r.json("train/lr_choice.json")  # written when the pipeline chose the rate
    if isinstance(choice, dict) and choice.get("why"):
        info = {**info, "lr_source": f"{info.get('lr_source')}: {choice['why']}"}
    return {
        "status": "ok",
        "curve": [c for c in guard.get("curve") or [] if isinstance(c, dict)],
        "best_step": data.get("best_step"),
        "global_step": data.get("global_step"),
        "stopped_early": bool(data.get("stopped_early")),
        "best_metrics": data.get("best_metrics"),
        "monitor": data.get("monitor") or "val_loss",
        "evals": [e for e in data.get("evals") or [] if isinstance(e, dict)],
        "overfitting": bool(guard.get("overfitting")),
        "guard_step": guard.get("detected_step"),
        "guard_reason": guard.get("reason") or "",
        "data": {k: info.get(k) for k in ("train_records", "val_records", "train_tokens", "truncated", "lr", "lr_source", "train_seconds", "approx_tokens_per_second", "params_trainable", "params_total")},
    }


def _evaluation(r: _Reader, pipeline: Any) -> dict[str, Any]:
    data, _ = r.json("evaluate/eval.json")
    if not isinstance(data, dict):
        return _not_run(_stage_reason(pipeline, ("evaluate",), "evaluate/eval.json is missing"))
    rows = [row for row in r.jsonl("evaluate/records.jsonl") if isinstance(row.get("gain"), (int, float))]
    rows.sort(key=lambda row: row["gain"], reverse=True)

    def brief(row: dict[str, Any]) -> dict[str, Any]:
        keep = ("id", "prompt", "completion", "text", "label", "generation", "predicted", "gain", "delta", "gain_metric")
        return {k: row[k] for k in keep if k in row}

    wins = [brief(x) for x in rows[:WINS_LOSSES] if x["gain"] > 0]
    losses = [brief(x) for x in reversed(rows[-WINS_LOSSES:]) if x["gain"] < 0]
    keys = ("task", "n_records", "metric", "higher_is_better", "reference", "metrics", "delta", "verdict", "verdict_reason",
            "references")
    return {"status": "ok", **{k: data.get(k) for k in keys}, "forgetting": data.get("forgetting"),
            "wins": wins, "losses": losses, "records_with_gain": len(rows)}  # fmt: skip


def _forgetting(evaluation: dict[str, Any], pipeline: Any) -> dict[str, Any]:
    if evaluation.get("status") != "ok":
        return _not_run(evaluation.get("reason", "no evaluation"))
    f = evaluation.pop("forgetting", None)
    if not isinstance(f, dict):
        return _not_run("evaluate/eval.json has no forgetting entry")
    if f.get("status") == "skipped":
        return _not_run(f"the forgetting check was skipped: {f.get('reason', 'no reason given')}")
    return {"status": "ok", **f}


def _reproducibility(r: _Reader, pipeline: Any) -> dict[str, Any]:
    from importlib import metadata

    pipe = pipeline if isinstance(pipeline, dict) else {}
    versions = pipe.get("versions") or {}
    versions_source = "pipeline.json (when the run ran)"
    if not versions:
        versions_source = "installed now, at report time (pipeline.json has none)"
        for pkg in REPRO_PACKAGES:
            try:
                versions[pkg] = metadata.version(pkg)
            except metadata.PackageNotFoundError:
                continue
    hashes = dict(pipe.get("data_hashes") or {})
    manifest, _ = r.json("curate/manifest.json")
    if isinstance(manifest, dict) and isinstance(manifest.get("input"), dict) and manifest["input"].get("sha256"):
        hashes.setdefault(str(manifest["input"].get("path")), manifest["input"]["sha256"])
    stages = [s for s in pipe.get("stages") or [] if isinstance(s, dict)]
    return {
        "status": "ok",
        "config": r.text("config.yaml"),
        "config_note": None if (r.run_dir / "config.yaml").is_file() else "config.yaml is missing from the run directory",
        "versions": versions,
        "versions_source": versions_source,
        "data_hashes": hashes,
        "stages": [{k: s.get(k) for k in ("name", "status", "seconds", "input_hash", "config_hash", "note")} for s in stages],
        "mlflow_parent_run_id": pipe.get("mlflow_parent_run_id"),
    }


def collect(run_dir: Path) -> dict[str, Any]:
    """All the facts of a run, keyed by section id (the content of report.json)."""
    r = _Reader(run_dir)
    pipeline, _ = r.json("pipeline.json")
    evaluation = _evaluation(r, pipeline)
    sections: dict[str, Any] = {
        "verdict": _verdict(r, pipeline, evaluation),
        "preflight": _preflight(r, pipeline),
        "audit": _audit(r, pipeline),
        "lr-sweep": _lr_sweep(r, pipeline),
        "curation-ab": _curation_ab(r, pipeline),
        "augment": _augment(r, pipeline),
        "search": _search(r, pipeline),
        "training": _training(r, pipeline),
        "forgetting": _forgetting(evaluation, pipeline),
        "evaluation": evaluation,
        "data-value": _data_value(r, pipeline),
        "reproducibility": _reproducibility(r, pipeline),
    }
    return {
        "run_dir": str(run_dir),
        "name": run_dir.name,
        "sections": {sid: {"title": SECTIONS[sid][0], **sections[sid]} for sid in SECTIONS},
        "problems": r.problems,
    }
