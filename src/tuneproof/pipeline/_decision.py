"""The decision at the end of a run: ship only a proven improvement, otherwise say why not."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from statistics import NormalDist
from typing import Any

from tuneproof._io import atomic_write
from tuneproof.config import RunConfig
from tuneproof.evaluate._references import not_beaten
from tuneproof.pipeline._own_causes import curation_cause, sweep_edge_cause
from tuneproof.pipeline._preflight import ALPHA, POWER

STRONG_REFERENCE = 0.95  # a reference this good (e.g. a linear probe) leaves little to win


def _read(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


def decide(cfg: RunConfig) -> dict[str, Any]:
    """Write ``decision.json`` (and ``model/`` when shipping) from the run's files; return it."""
    run_dir = cfg.run_dir
    ev = _read(run_dir / "evaluate" / "eval.json")
    pre = _read(run_dir / "preflight" / "preflight.json") or {}
    tr = _read(run_dir / "train" / "train.json") or {}
    model_src = run_dir / "train" / "model"
    ship = bool(ev and ev.get("verdict") == "improved" and model_src.is_dir() and not cheap_reference_causes(ev))
    deliverable = run_dir / "model"
    if deliverable.exists():
        shutil.rmtree(deliverable)  # a deliverable from an earlier, different run must not linger
    causes: list[dict[str, str]] = []
    if ship:
        shutil.copytree(model_src, deliverable)
        headline = f"improved: ship {deliverable}"
    else:
        headline = "not proven: do not ship"
        causes = likely_causes(ev, pre, tr, cfg)
    decision = {
        "ship": ship,
        "verdict": ev.get("verdict") if ev else "not_evaluated",
        "headline": headline,
        "evidence": _evidence(ev),
        "causes": causes,
        "model_path": str(deliverable) if ship else None,
    }
    atomic_write(run_dir / "decision.json", json.dumps(decision, indent=1))
    return decision


def _evidence(ev: dict[str, Any] | None) -> str:
    if not ev:
        return "the evaluation did not run, so nothing is proven"
    d = ev["delta"]
    return (f"{ev['metric']}: tuned {d['tuned']:.4g} vs {ev['reference']} {d['reference']:.4g}, delta {d['value']:+.4g} "
            f"({d['confidence']:.0%} CI [{d['ci_low']:+.4g}, {d['ci_high']:+.4g}]) on {ev['n_records']} test records; "
            f"{ev.get('verdict_reason', '')}")  # fmt: skip


def likely_causes(ev: dict[str, Any] | None, pre: dict[str, Any], tr: dict[str, Any],
                  cfg: RunConfig | None = None) -> list[dict[str, str]]:  # fmt: skip
    """The causes that fit the evidence, most likely first; never empty.

    With ``cfg``, tuneproof's own stages are causes too, from the run's files
    (:mod:`tuneproof.pipeline._own_causes`): curation that caused the shortage of training
    records comes before the small test and the data problems it caused; curation that
    removed a large share before a regression comes after the small test; a rate at the edge
    of the lr sweep comes before the training budget.
    """
    causes: list[dict[str, str]] = []
    cured = curation_cause(cfg, ev, pre) if cfg is not None and ev else None
    edge = sweep_edge_cause(cfg.run_dir, tr) if cfg is not None and ev else None
    if not ev:
        return [{"code": "not_evaluated", "evidence": "evaluate/eval.json is missing (stage off or failed)",
                 "next": "switch pipeline.stages.evaluate on and rerun; see pipeline.json for the failure"}]  # fmt: skip
    causes += cheap_reference_causes(ev)
    d, metric = ev["delta"], ev["metric"]
    ref = d["reference"]
    higher = d.get("higher_is_better", True)
    if higher and metric != "nll" and ref is not None and ref >= STRONG_REFERENCE:
        causes.append({"code": "reference_strong", "evidence": f"the {ev['reference']} already scores {metric} {ref:.3g} "
                       f"(>= {STRONG_REFERENCE:.0%}), leaving at most {1 - ref:.3g} to gain",
                       "next": "use the reference as it is (e.g. the linear probe); fine-tune only for a harder task"})  # fmt: skip
    if ev.get("verdict") == "regressed":
        causes.append({"code": "regressed", "evidence": f"the tuned model is worse: delta {d['value']:+.4g}",
                       "next": "lower the learning rate or train fewer steps; check the lr sweep plot"})  # fmt: skip
    guard = tr.get("guard") or {}
    if guard.get("overfitting"):
        causes.append({"code": "overfitting", "evidence": f"the overfitting guard fired ({guard.get('rule') or 'rule'} at step "
                       f"{guard.get('detected_step')})", "next": "more data, fewer epochs, lower lr, or more dropout/weight decay"})  # fmt: skip
    if cured and cured[1]:
        causes.append(cured[0])
    mde = measured_mde(ev) or pre.get("min_detectable_effect") or {}
    gain = d["value"] if higher else -d["value"]
    if gain <= 0 and ev.get("verdict") != "regressed":
        # More test records cannot prove a gain that is not there: the tuned model is no better.
        causes.append({"code": "not_better", "evidence": f"the tuned model scores {metric} {d['tuned']:.4g} against the "
                       f"{ev['reference']}'s {ref:.4g} (delta {d['value']:+.4g}): no better, within noise",
                       "next": "check the lr sweep plot and the training curves; if the reference is this good, use it"})  # fmt: skip
    elif mde.get("value") is not None and 0 < gain < mde["value"]:
        causes.append({"code": "test_too_small", "evidence": f"the effect {gain:+.4g} is below the minimum detectable effect "
                       f"{mde['value']:.3g} for {mde.get('n_test')} test records (alpha {mde.get('alpha')}, power {mde.get('power')}; "
                       f"{mde.get('variance_source', 'preflight estimate')})",
                       "next": "evaluate on more test records (raise data.test_fraction or eval.limit), or aim for a larger effect"})  # fmt: skip
    if cured and not cured[1]:
        causes.append(cured[0])
    audit_risks = [r for r in pre.get("risks", []) if r["code"] in ("leakage", "duplicate_share", "data_noise", "too_few_examples")
                   and r["level"] != "low"]  # fmt: skip
    if audit_risks:
        r = audit_risks[0]
        causes.append({"code": "data_problem", "evidence": f"{r['code']}: {r['evidence']}", "next": r["fix"]})
    if edge:
        causes.append(edge)
    if tr and not tr.get("stopped_early") and not guard.get("overfitting"):
        best, last = tr.get("best_step"), tr.get("global_step")
        if best is not None and last and best >= last:
            score = str(tr.get("monitor") or "val_loss").replace("val_", "validation ", 1)
            causes.append({"code": "budget", "evidence": f"{score} was still at its best at the last step ({last}): "
                           "training had not converged", "next": "raise train.max_steps / epochs (the budget ran out)"})  # fmt: skip
    if not causes:
        causes.append({"code": "no_effect", "evidence": f"delta {d['value']:+.4g}: the tuned model is no better than the reference",
                       "next": "try more or cleaner data, a wider lr range in the sweep, or a larger model"})  # fmt: skip
    return causes


def cheap_reference_causes(ev: dict[str, Any]) -> list[dict[str, str]]:
    """A cause for each gating cheap reference (constant answer, class prior) the tuned model does not beat.

    A model that a constant answer matches or beats learned the class balance, not the task,
    whatever its gain over the base model: it never ships, and this cause comes first.
    """
    out = []
    for name, r in (ev.get("references") or {}).items():
        if name == ev.get("reference") or not r.get("gating") or r.get("verdict") == "improved":
            continue
        d = r.get("delta") or {}
        out.append({"code": "reference_constant" if name == "majority" else f"reference_{name}",
                    "evidence": f"{r.get('description')} scores {d.get('metric')} {_num(r.get('score'))}; the tuned model's "
                    f"{_num(r.get('tuned'))} {not_beaten(d)} (delta {_num(d.get('value'), '+.3g')}, "
                    f"{d.get('confidence') or 0.95:.0%} CI [{_num(d.get('ci_low'), '+.3g')}, {_num(d.get('ci_high'), '+.3g')}])",
                    "next": "the tuned model does no better than answering by the label balance alone: check that the "
                    "answers follow from the inputs, add examples of the rarer answers (or balance them), and read "
                    "macro_f1 (it does not reward a constant)"})  # fmt: skip
    return sorted(out, key=lambda c: c["code"] != "reference_constant")


def _num(x: Any, spec: str = ".3f") -> str:
    return format(x, spec) if isinstance(x, (int, float)) else "undefined"


def measured_mde(ev: dict[str, Any]) -> dict[str, Any] | None:
    """The minimum detectable effect implied by the evaluation's own paired-bootstrap CI.

    The preflight can only bound the per-record variance before anything is scored (for a
    metric in [0, 1], var(d) <= 0.5: several times too high for ROUGE-L or token F1); the
    evaluation measured it. Its CI's half-width is ~z_{1-a/2} standard errors, so
    MDE = (z_{1-alpha/2} + z_power) * SE. None without a CI.

    Example:
        >>> ev = {"n_records": 150, "delta": {"ci_low": 0.01, "ci_high": 0.05, "confidence": 0.95}}
        >>> measured_mde(ev)["value"]
        0.0286
    """
    d = ev.get("delta") or {}
    lo, hi = d.get("ci_low"), d.get("ci_high")
    if not isinstance(lo, (int, float)) or not isinstance(hi, (int, float)) or not hi > lo:
        return None
    conf = d.get("confidence") or 0.95
    se = (hi - lo) / (2 * NormalDist().inv_cdf(0.5 + conf / 2))
    z = NormalDist().inv_cdf(1 - ALPHA / 2) + NormalDist().inv_cdf(POWER)
    return {"value": round(z * se, 4), "n_test": ev.get("n_records"), "alpha": ALPHA, "power": POWER,
            "variance_source": "from the evaluation's paired-bootstrap CI"}  # fmt: skip
