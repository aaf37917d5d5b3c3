"""Preflight: estimates for the planned budget, failure risks with evidence and fix, and the MDE."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from statistics import NormalDist
from typing import Any

from tuneproof._io import atomic_write
from tuneproof.config import RunConfig
from tuneproof.pipeline._budget import example_lengths, plan, read_jsonl, sample_records

# Measured on this 2-core CPU (PITFALLS.md): non-padding tokens/s in training, bf16 autocast.
MEASURED_TOKENS_PER_SECOND = {("smollm2-135m", "lora"): 450.0, ("smollm2-135m", "full"): 410.0,
                              ("smollm2-135m", "freeze"): 450.0, ("minilm", "full"): 4500.0,
                              ("minilm", "lora"): 4500.0, ("minilm", "freeze"): 4500.0}  # fmt: skip
_REF_PARAMS = 135e6  # SmolLM2-135M: the reference for models we have not measured
# Peak resident memory measured for SmolLM2 LoRA bf16 at 8 x 256 tokens (PITFALLS.md).
_REF_PEAK_GB, _REF_BATCH_TOKENS = 5.5, 8 * 256
# The smallest effect worth a decision when the config leaves eval.min_effect at 0.
DEFAULT_MIN_EFFECT = {"exact_match": 0.02, "token_f1": 0.02, "rouge_l": 0.02, "label_accuracy": 0.02,
                      "accuracy": 0.01, "macro_f1": 0.01, "auroc": 0.01, "nll": 0.05}  # fmt: skip
ALPHA, POWER = 0.05, 0.8
MIN_TRAIN_RECORDS = 200  # fewer training records: the too_few_examples risk
DATA_NOISE_SHARE = 0.3  # curation removed more of the input rows: the data_noise risk


def min_effect(cfg: RunConfig) -> float:
    return cfg.eval.min_effect or DEFAULT_MIN_EFFECT.get(cfg.primary_metric, 0.02)


def minimum_detectable_effect(n: int, var_diff: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest mean paired difference a two-sided test at ``alpha`` detects with ``power``.

    MDE = (z_{1-alpha/2} + z_{power}) * sqrt(var(d) / n), with d the per-record difference
    tuned - reference. Example: n=200, var(d)=0.5 (the bound for a 0/1 metric) gives 0.140.
    """
    if n <= 0:
        return math.inf
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return z * math.sqrt(var_diff / n)


def _baseline_scores(run_dir: Path, metric: str) -> tuple[list[float] | None, str]:
    """Per-record reference scores from baseline/records.jsonl, when the baseline stage ran, and
    the reference's name: the base model zero-shot (SFT) or the linear probe (classification)."""
    rows = read_jsonl(run_dir / "baseline" / "records.jsonl")
    vals = []
    for r in rows:
        v = (r.get("base") or {}).get(metric) if isinstance(r.get("base"), dict) else r.get(f"base_{metric}")
        if isinstance(v, (int, float)):
            vals.append(float(v))
    info = _read_json(run_dir / "baseline" / "baseline.json") or {}
    name = "the linear probe" if info.get("reference") == "probe" else "the base model zero-shot"
    return vals or None, name


def mde_for(cfg: RunConfig, n_test: int, measured: dict[str, Any] | None = None) -> dict[str, Any]:
    metric = cfg.primary_metric
    bounded = metric != "nll"
    # The base model's scores on test from the baseline stage (stale ones do not count when it is off).
    scores, name = _baseline_scores(cfg.run_dir, metric) if cfg.pipeline.stages.get("baseline") else (None, "")
    n = min(n_test, cfg.eval.limit) if cfg.eval.limit else n_test
    if scores and (found := measured_variance({"name": f"{name} (baseline/records.jsonl)", "scores": scores,
                                               "bounded": bounded, "before_training": True}, n)):
        var_diff, source = found
        measured = {"name": name, "bounded": bounded}
    elif measured and (found := measured_variance(measured, n)):
        var_diff, source = found
    elif bounded:
        var_diff, source = 0.5, "conservative bound for a metric in [0, 1]: var(d) <= 0.25 + 0.25"
    else:
        var_diff, source = 1.0, "in standard deviations of the per-record difference (nll is unbounded)"
    # An upper bound (so the MDE is "at most"): the worst case, or a constant's measured scores.
    note = "the variance bound for a metric in [0, 1]" if source.startswith("conservative bound") else None
    if source.startswith("measured") and (measured or {}).get("bounded"):
        note = f"the variance bound from {measured['name']}'s measured scores"  # type: ignore[index]
    return {"metric": metric, "value": round(minimum_detectable_effect(n, var_diff), 4), "n_test": n,
            "power": POWER, "alpha": ALPHA, "variance_source": source, "target_effect": min_effect(cfg),
            "upper_bound": note is not None, **({"bound_note": note} if note else {})}  # fmt: skip


def measured_variance(measured: dict[str, Any], n: int) -> tuple[float, str] | None:
    """var(d) from a cheap reference's per-record scores on the test set, scored before training.

    d = tuned - reference per record. With non-negative correlation between the two,
    var(d) <= var(reference) + var(tuned). A constant answer's scores lie in [0, 1] with mean p
    (a Bernoulli for accuracy: var = p(1-p)); a tuned model that scores p + delta has
    var <= (p + delta)(1 - p - delta) (Bhatia-Davis, equality for 0/1 scores), so
    var(d) <= var(reference) + (p + delta)(1 - p - delta), with delta the MDE itself (a fixed
    point, a few iterations). Scores passed with ``bounded`` false (the lead's ROUGE-L,
    the base model's NLL) give var(d) ~ 2 var(reference): the tuned model assumed as variable,
    the correlation ignored. ``measured["before_training"]`` marks the base
    model's own scores from the baseline stage. None when the scores are too few, or unbounded
    scores do not vary.
    """
    x = [float(v) for v in measured["scores"]]
    if len(x) < 2 or n <= 0:
        return None
    p = sum(x) / len(x)
    var = sum((v - p) ** 2 for v in x) / (len(x) - 1)
    name = measured["name"]
    if not measured.get("bounded"):
        if var <= 0:
            return None
        return 2 * var, f"measured: 2 x {name}'s per-record variance {var:.4g} on test (tuned assumed as variable)"
    # From the worst case down: a reference that scores 0 everywhere would otherwise stay at the
    # fixed point delta = 0 (q = 0, no variance), claiming any gain detectable.
    delta = minimum_detectable_effect(n, var + 0.25)
    for _ in range(50):
        q = min(p + delta, 1.0)
        delta = minimum_detectable_effect(n, var + q * (1 - q))
    q = min(p + delta, 1.0)
    return var + q * (1 - q), (f"measured: {name} scores {p:.3f} on test (variance {var:.4g}); var(d) <= var + "
                               f"q(1-q) with q = {q:.3f}, the score the tuned model needs (non-negative correlation assumed)"
                               + ("" if measured.get("before_training") else "; the base model was not scored before training"))  # fmt: skip


def _throughput(cfg: RunConfig) -> tuple[float, str]:
    key = (cfg.model.name, cfg.model.method)
    if key in MEASURED_TOKENS_PER_SECOND:
        return MEASURED_TOKENS_PER_SECOND[key], "measured on this 2-core CPU (PITFALLS.md)"
    params = _param_count(cfg.model.name)
    if params:
        return 450.0 * _REF_PARAMS / params, f"scaled from SmolLM2-135M LoRA's 450 tok/s by parameters ({params / 1e6:.2f}M)"
    return 450.0, "unknown model: assumed like SmolLM2-135M LoRA"


def _param_count(name: str) -> float | None:
    cfg_path = Path(name) / "config.json"
    if not cfg_path.exists():
        return None
    c = json.loads(cfg_path.read_text())
    h, layers, vocab = c.get("hidden_size"), c.get("num_hidden_layers"), c.get("vocab_size")
    if not (h and layers and vocab):
        return None
    return 12 * layers * h * h + vocab * h


def preflight(cfg: RunConfig, split_dir: Path, out: Path, *, curate_dir: Path | None, audit_dir: Path | None) -> dict[str, Any]:
    """Write ``preflight.json``: estimates, the minimum detectable effect and the risks."""
    train = read_jsonl(split_dir / "train.jsonl")
    val = read_jsonl(split_dir / "val.jsonl")
    test = read_jsonl(split_dir / "test.jsonl")
    lengths = example_lengths(cfg, sample_records(train), cap=False) or [0]  # before the cut, for the truncation risk
    mean_len = sum(min(n, cfg.model.max_length) for n in lengths) / len(lengths)
    pl, tr = cfg.pipeline, cfg.train
    per_step = tr.batch_size * tr.grad_accum * mean_len
    budget = plan(cfg, len(train), curate_dir)
    final_steps, n_lrs, trials = budget.final, budget.n_lrs, budget.n_trials
    sweep_steps = budget.sweep or min(tr.max_steps or 30, 30)
    trial_steps = budget.tune or final_steps
    st = pl.stages
    steps = final_steps * st["train"] + sweep_steps * n_lrs * st["lr_sweep"] + trial_steps * trials * st["tune"]
    tokens = steps * per_step
    tps, tps_source = _throughput(cfg)
    params = _param_count(cfg.model.name) or _REF_PARAMS
    peak = 1.0 + (_REF_PEAK_GB - 1.0) * (params / _REF_PARAMS) * (tr.batch_size * cfg.model.max_length) / _REF_BATCH_TOKENS
    estimates = {"train_tokens": int(tokens), "seconds": round(tokens / tps, 1), "peak_memory_gb": round(peak, 2),
                 "tokens_per_second_assumed": round(tps, 1), "throughput_source": tps_source,
                 "mean_tokens_per_record": round(mean_len, 1), "steps": {"final": final_steps,
                 "sweep": sweep_steps * n_lrs, "tune": trial_steps * trials},
                 "tune_skipped": budget.tune_skipped if st["tune"] else None}  # fmt: skip
    balance, measured = class_balance(cfg, split_dir)
    mde = mde_for(cfg, len(test), measured)
    risks = _risks(cfg, train, val, lengths, final_steps, mde, curate_dir, audit_dir)
    report = {"estimates": estimates, "min_detectable_effect": mde, "risks": risks,
              "counts": {"train": len(train), "val": len(val), "test": len(test)}, "class_balance": balance}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "preflight.json", json.dumps(report, indent=1))
    return report


def class_balance(cfg: RunConfig, split_dir: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The class balance of train and test and a constant answer's score on test (label tasks), before training.

    See :func:`tuneproof.evaluate._references.preflight_references`; the second value holds the
    per-record scores the minimum detectable effect takes its variance from.
    """
    from tuneproof.data import load_records
    from tuneproof.evaluate._references import preflight_references

    from tuneproof.errors import DataError

    try:
        train, test = (load_records(split_dir / f"{p}.jsonl").records for p in ("train", "test"))
    except DataError as exc:  # an empty split: the preflight's counts and risks say so
        return {"note": f"not computed: {str(exc)[:300]}"}, None
    return preflight_references(cfg.task, cfg.primary_metric, train, test)


def _risk(code: str, level: str, evidence: str, fix: str) -> dict[str, str]:
    return {"code": code, "level": level, "evidence": evidence, "fix": fix}


def _risks(cfg, train, val, lengths, final_steps, mde, curate_dir, audit_dir) -> list[dict[str, str]]:  # noqa: ANN001
    risks: list[dict[str, str]] = []
    n = len(train)
    if n < MIN_TRAIN_RECORDS:
        risks.append(_risk("too_few_examples", "high" if n < 50 else "medium", f"{n} training records after curation and split",
                           "add data: a few hundred clean examples is the usual minimum for a measurable gain"))
    manifest = _read_json(curate_dir / "manifest.json") if curate_dir else None
    if manifest:
        counts = manifest.get("counts", {})
        total = max(counts.get("input_rows", 0), 1)
        by_check = counts.get("removed_by_check", {})
        dup = by_check.get("exact_duplicate", 0) + by_check.get("near_duplicate", 0)
        if dup / total > 0.1:
            risks.append(_risk("duplicate_share", "medium", f"{dup} of {total} input rows ({dup / total:.0%}) were duplicates "
                               "(removed by curation)", "find why the source repeats records; the kept data is deduplicated"))
        removed = counts.get("removed", 0)
        held = (manifest.get("budget") or {}).get("flagged_and_kept", 0)
        if removed / total > DATA_NOISE_SHARE:
            risks.append(_risk("data_noise", "medium", f"curation removed {removed} of {total} rows ({removed / total:.0%}): "
                               f"{counts.get('removed_by_reason', {})}" + (f"; {held} more were over the removal budget, "
                               "flagged and kept (the curation_budget risk)" if held else ""),
                               "check the data source; see curate/removed.jsonl"))  # fmt: skip
        risks += _budget_risks(manifest)
    if audit_dir and (leak := _leakage_risk(cfg, audit_dir, manifest)):
        risks.append(leak)
    if trunc := _truncation_risk(cfg, lengths, audit_dir):
        risks.append(trunc)
    if cfg.task == "classification":
        labels: dict[str, int] = {}
        for r in train:
            labels[str(r.get("label"))] = labels.get(str(r.get("label")), 0) + 1
        if labels and min(labels.values()) / n < 0.05:
            risks.append(_risk("class_imbalance", "medium", f"label counts in train: {labels}",
                               "collect more of the rare class, or use macro_f1 as eval.metric"))
    target = mde["target_effect"]
    if mde["value"] > target:
        # Before anything is scored, a metric in [0, 1] only has the variance bound: the MDE is
        # then an upper bound (for ROUGE-L or token F1 several times the real one), so a
        # medium risk; the decision reads the evaluation's measured variance instead.
        bound = mde.get("upper_bound", mde["variance_source"].startswith("conservative bound"))
        risks.append(_risk("test_too_small", "high" if mde["value"] > 3 * target and not bound else "medium",
                           f"with {mde['n_test']} test records the minimum detectable effect on {mde['metric']} is "
                           f"{'at most ' if bound else ''}{mde['value']:.3g} (alpha {ALPHA}, power {POWER}"
                           f"{'; from ' + mde.get('bound_note', 'the variance bound for a metric in [0, 1]') if bound else ''}), above the target effect {target:g}",
                           f"raise data.test_fraction or add data: about {_n_for(mde, target)} test records detect {target:g}"))
    if len(val) < 30:
        risks.append(_risk("val_too_small", "medium", f"{len(val)} validation records: early stopping and the guard watch noise",
                           "raise data.val_fraction"))
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    if load > cores:
        risks.append(_risk("machine_busy", "medium", f"load average {load:.1f} on {cores} cores: the time estimate assumes "
                           "an idle machine (at load ~5 on 2 cores, SmolLM2 LoRA has trained at ~13 tok/s instead of ~450)",
                           "run when the machine is idle, or expect the run to take several times the estimate"))  # fmt: skip
    tr = cfg.train
    if cfg.pipeline.stages["train"] and final_steps * tr.batch_size * tr.grad_accum < n:
        seen = final_steps * tr.batch_size * tr.grad_accum
        risks.append(_risk("budget_under_one_epoch", "medium", f"the final training sees {seen} examples, fewer than the "
                           f"{n} training records", "raise train.max_steps (or unset it and use train.epochs)"))
    return risks


def _budget_risks(manifest: dict[str, Any]) -> list[dict[str, str]]:
    """A high risk per check whose removals the removal budget held back (``tuneproof.audit._budget``).

    Those rows were flagged and kept: either the check's threshold does not fit this data (then
    training on them is right) or the data really is that noisy (then the user must say so by
    raising the budget). Either way it is a decision for the user, so strict mode stops here.
    """
    budget = manifest.get("budget") or {}
    total = budget.get("total") or {}
    risks = []
    for check in budget.get("suspended", []):
        e = budget["checks"][check]
        examples = "; ".join(f'{x["id"]} "{x["text"][:60]}"' for x in e.get("examples", []))
        per = _tenths_above(e["share"] - e["expected_share"])
        need_total = _tenths_above(total.get("share", 0) - total.get("expected_share", 0))
        need_total = max(per, need_total)
        allow = f"audit.max_check_removed_share: {per:g}" + (
            f" and audit.max_removed_share: {need_total:g}" if budget.get("max_removed_share", 1) < need_total else "")
        first = (
            "check the domain description (data.domain_text) or give domain references (data.domain)" if check == "off_domain"
            else f"read the {check} findings in curate/findings.jsonl; if they are wrong, keep them (audit.decisions.{check}: flag)"
        )  # fmt: skip
        risks.append(_risk("curation_budget", "high", f"curation's {check} check would remove {e['would_remove']} of "
                           f"{budget.get('rows')} rows ({e['share']:.0%}), over the removal budget ({e.get('why', '')}): "
                           f"they were flagged and kept, e.g. {examples}",
                           f"{first}; to remove them anyway set {allow}"))  # fmt: skip
    return risks


def _tenths_above(share: float) -> float:
    """The smallest limit in tenths that admits ``share`` (0.81 -> 0.9), at most 1."""
    return min(1.0, math.ceil(round(share * 10, 6)) / 10)


def _n_for(mde: dict[str, Any], target: float) -> int:
    return math.ceil(mde["n_test"] * (mde["value"] / target) ** 2)


def _truncation_risk(cfg: RunConfig, lengths: list[int], audit_dir: Path | None) -> dict[str, str] | None:
    """Records longer than ``model.max_length``: high when many lose what is learned, medium when only prompts are cut.

    SFT records with one completion keep it whole and lose their prompt's middle (start and
    end kept; ``tuneproof.train.sft.fit_prompt``, the same in evaluation), so a long article
    with a short summary costs context, not the target. The audit's ``too_long`` findings say
    which kind each record is, with the model's real tokens and template; without them, or when
    any record loses completion tokens (text records, chats with several replies, completions
    over the limit), the share of over-long records sets the level.

    Classification keeps each text's first tokens and cuts its end
    (``tuneproof.train.classification.encode_classification``): the label is never cut, so
    the risk is medium, like a cut prompt, and says which part is lost.
    """
    limit = cfg.model.max_length
    over = sum(1 for x in lengths if x > limit)
    if not lengths or over / len(lengths) <= 0.05:
        return None
    share = over / len(lengths)
    evidence = f"{over} of {len(lengths)} sampled records ({share:.0%}) exceed model.max_length={limit} tokens"
    if cfg.task == "classification":
        return _risk("truncation", "medium", f"{evidence}: training and evaluation keep each such text's first {limit} "
                     "tokens and cut its end, so a label that rests on the end is not learned", "raise "
                     "model.max_length to keep whole texts (more memory and time per step), or shorten the texts")  # fmt: skip
    long = [r for r in read_jsonl(audit_dir / "findings.jsonl") if r.get("check") == "too_long"] if audit_dir else []
    if long and all(r.get("completion_tokens_cut") == 0 for r in long):
        return _risk("truncation", "medium", f"{evidence}; the audit's too_long check found every completion kept whole: "
                     "training and evaluation cut each such prompt's middle (its start and end kept)", "raise "
                     "model.max_length to keep whole prompts (more memory and time per step), or shorten the prompts")  # fmt: skip
    return _risk("truncation", "high" if share > 0.3 else "medium", evidence, "raise model.max_length or shorten the records")


def _leakage_risk(cfg: RunConfig, audit_dir: Path, manifest: dict[str, Any] | None) -> dict[str, str] | None:
    """The leakage risk, by what the audit found and what curation removed.

    Severe findings (the same text or prompt as an eval record, or shared runs covering
    ``audit.leakage_min_coverage`` of its content) left in training are a high risk: the test
    score would measure memory. Partial overlaps (a quoted line, a shared story) are warnings
    that curation keeps by design; they are a low risk, listed so that someone reads them.
    """
    rows = [r for r in read_jsonl(audit_dir / "findings.jsonl") if r.get("check") == "leakage"]
    severe = sum(1 for r in rows if r.get("severity") == "severe")
    partial = len(rows) - severe
    removed = ((manifest or {}).get("counts", {}).get("removed_by_check", {}) or {}).get("leakage", 0)
    cov = cfg.audit.leakage_min_coverage
    if severe > removed:
        return _risk("leakage", "high", f"{severe - removed} training record(s) left in training copy evaluation records "
                     f"(the same text or prompt, or shared {cfg.audit.leakage_ngram}-word runs covering >= {cov:.0%} of "
                     "their content)", "remove them (audit.decisions.leakage: remove) or fix the evaluation set")  # fmt: skip
    if partial:
        return _risk("leakage", "low", f"{partial} training record(s) share a few {cfg.audit.leakage_ngram}-word runs with "
                     f"evaluation records, under {cov:.0%} of their content (partial overlaps, kept: a quoted line or the "
                     "same story, not a copy)", "read them in audit/findings.jsonl (code 'partial overlap'); to remove "
                     "them, lower audit.leakage_min_coverage")  # fmt: skip
    return None


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None
