"""A paired A/B of two training sets: train both at the same budget, score both on the same records.

An intervention on the training data (curation now; augmentation or data valuation later)
is a hypothesis: it claims the model trains better on its data than on the data without it.
:func:`paired_ab` tests that claim the cheapest way that still controls the noise:

- **the same budget**: both arms train the same number of steps at the same rate and seed,
  so they see as many examples and differ only in which examples those are;
- **the same records**: both are scored on the same validation records, never on rows the
  intervention touched, so the comparison is paired and the records' shared difficulty
  cancels out (:func:`tuneproof.evaluate.paired_bootstrap_means`);
- **the burden of proof on the change of plan**: arm A (the intervention) is kept unless its
  validation loss is worse than arm B's *beyond noise*, that is unless the whole confidence
  interval of (A's loss - B's loss) lies above 0 (:func:`ab_decision`). A short run cannot
  prove that curation helps, and it need not: the run already chose to curate. It can catch
  curation that plainly hurt, which is the silent failure worth catching.

For curation, :func:`raw_training_rows` builds arm B: the curated training split plus the
rows curation removed, except rows that must never train (copies of validation or test
records, and leakage findings): they would flatter the raw arm on the very records that
score it, and leak the test set into the final training.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tuneproof._io import atomic_open, atomic_write
from tuneproof.config import RunConfig, load_config
from tuneproof.data import Record, load_records

__all__ = [
    "AB_FILE", "RAW_TRAIN", "ab_budget", "ab_decision", "arm_scores", "arm_val_losses", "curation_ab", "paired_ab",
    "raw_training_rows", "replicated", "reverted_train_path", "train_arm", "write_val_losses",
]  # fmt: skip

AB_FILE = "ab.json"
RAW_TRAIN = "raw_train.jsonl"  # arm B of the curation A/B: what tune and train use when it wins
_EXAMPLES = 5  # excluded record ids listed per reason


def ab_decision(
    a_losses: Sequence[float], b_losses: Sequence[float], *, a: str = "A", b: str = "B",
    confidence: float = 0.95, resamples: int = 1000, seed: int = 0, keep_when: str = "not_worse",
) -> dict[str, Any]:  # fmt: skip
    """Keep arm ``a`` unless its per-record losses are worse than arm ``b``'s beyond noise
    (``keep_when="not_worse"``), or only when they are better beyond noise (``"better"``).

    The difference is mean(a) - mean(b) over the same records (paired), with a paired
    bootstrap interval. "Beyond noise" is the interval lying entirely above 0 (worse) or
    entirely below 0 (better); its half-width is reported as the noise. No threshold is tuned
    here: the interval's confidence is the only knob (``eval.confidence`` in a run).
    ``keep_when`` says which side carries the burden of proof: the change of plan (curation,
    which the run already chose, is dropped only when it plainly hurt) or the intervention
    (augmentation adds made-up records, and is used only when it plainly helped).

    Args:
        a_losses, b_losses: one loss per validation record, in the same record order.
        a, b: the arms' names, for the sentences and keys.
        confidence, resamples, seed: of the paired bootstrap.
        keep_when: ``"not_worse"`` or ``"better"``.

    Returns:
        ``{"decision": "keep" | "revert", "why", "keep_when", "val_loss": {a, b}, "difference",
        "ci", "noise", "confidence", "resamples", "n_records"}``; ``revert`` means use arm ``b``.

    Example:
        >>> ab_decision([1.0, 1.2, 0.9, 1.1], [1.0, 1.1, 1.0, 1.1], a="curated", b="raw")["decision"]
        'keep'
    """
    if keep_when not in ("not_worse", "better"):
        raise ValueError(f"keep_when={keep_when!r}: use 'not_worse' or 'better'")
    from tuneproof.evaluate import paired_bootstrap_means

    la, lb = np.asarray(a_losses, dtype=float), np.asarray(b_losses, dtype=float)
    d = paired_bootstrap_means("val_loss", lb, la, higher_is_better=False, resamples=resamples, confidence=confidence, seed=seed)
    noise = (d.ci_high - d.ci_low) / 2
    ci = f"{confidence:.0%} CI [{d.ci_low:+.4g}, {d.ci_high:+.4g}]"
    worse = d.ci_low > 0
    revert = worse if keep_when == "not_worse" else not d.ci_high < 0
    if worse:
        why = (f"{a} validation loss {d.tuned:.4g} is worse than {b} {d.reference:.4g} beyond noise: the difference "
               f"{d.value:+.4g} ({ci}, noise ±{noise:.3g}) lies entirely above 0, so {b} is used")  # fmt: skip
    else:
        side = "better" if d.value < 0 else "worse" if d.value > 0 else "no different"
        proven = " beyond noise" if d.ci_high < 0 else ", within noise"
        rule = (f"{a} is kept unless it is worse beyond noise" if keep_when == "not_worse" else
                f"{a} is kept only when it is better beyond noise" + (f", so {b} is used" if revert else ""))  # fmt: skip
        why = (f"{a} validation loss {d.tuned:.4g} against {b} {d.reference:.4g}: {side}{proven if side != 'no different' else ''} "
               f"(difference {d.value:+.4g}, {ci}, noise ±{noise:.3g}); {rule}")  # fmt: skip
    return {
        "decision": "revert" if revert else "keep", "why": why, "keep_when": keep_when, "val_loss": {a: d.tuned, b: d.reference},
        "difference": d.value, "ci": [d.ci_low, d.ci_high], "noise": noise, "confidence": confidence,
        "resamples": resamples, "n_records": int(la.size),
    }  # fmt: skip


def _arm_config(cfg: RunConfig, train_path: Path, val_path: Path, steps: int, lr: float) -> dict[str, Any]:
    """The run's config with this arm's data and the A/B's budget: every arm runs all its steps."""
    raw = cfg.model_dump(mode="json")
    raw["data"].update(path=str(train_path), eval_path=str(val_path), fields={}, split=None)
    raw["train"].update(
        max_steps=steps, eval_steps=steps, lr=lr,
        early_stopping={**raw["train"]["early_stopping"], "enabled": False, "monitor": "val_loss"},
        overfit_guard={**raw["train"]["overfit_guard"], "enabled": False},
    )  # fmt: skip
    return raw


def arm_val_losses(cfg: RunConfig, model_dir: Path, records: list[Record], source: str) -> np.ndarray:
    """One loss per validation record for a trained model (``cfg.model.name`` is its base).

    SFT: the mean NLL of the completion tokens (teacher forcing), as evaluation scores it.
    Classification: the cross-entropy of the true label, -log p(label).
    """
    return arm_scores(cfg, model_dir, records, source)["loss"]


def arm_scores(cfg: RunConfig, model_dir: Path | str, records: list[Record], source: str) -> dict[str, np.ndarray]:
    """Per-record scores of a trained model: ``loss`` (as :func:`arm_val_losses`), and for
    classification ``correct`` (1.0 where the most probable label is the true one), which the
    same forward pass gives for free."""
    from tuneproof.evaluate._loading import load_tuned, read_labels
    from tuneproof.models import inference_device
    from tuneproof.train import resolve_bf16

    bf16 = resolve_bf16(cfg.train.bf16, on_gpu=inference_device().type == "cuda")
    batch = cfg.train.batch_size
    if cfg.task == "classification":
        from tuneproof.evaluate._classify import label_ids, predict_proba

        labels = read_labels(model_dir) or cfg.model.labels
        model, tok = load_tuned(model_dir, cfg.model.name, "classification", labels=labels, seed=cfg.train.seed)
        model.eval().to(inference_device())
        y = label_ids(records, list(labels or []), source)
        proba = predict_proba(model, tok, [str(r.text) for r in records], max_length=cfg.model.max_length, batch_size=batch)
        loss = -np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1.0))
        return {"loss": loss, "correct": (proba.argmax(axis=1) == y).astype(float)}
    from tuneproof.evaluate._sft import score_nll, sft_examples

    model, tok = load_tuned(model_dir, cfg.model.name, "sft", seed=cfg.train.seed)
    model.eval().to(inference_device())
    nll, _, _ = score_nll(model, tok, sft_examples(records, source), max_length=cfg.model.max_length, batch_size=batch, bf16=bf16)
    return {"loss": np.asarray(nll, dtype=float)}


def train_arm(
    cfg: RunConfig, name: str, path: Path, val_path: Path, records: list[Record], out: Path, *, steps: int, lr: float,
    parent_run_id: str | None = None, console: Any = None,
) -> tuple[np.ndarray, dict[str, Any]]:  # fmt: skip
    """Train one arm on ``path`` for ``steps`` steps at ``lr`` in ``out/<name>``, score it on ``records``
    (read from ``val_path``), then delete its model.

    Returns:
        ``(losses, info)``: one validation loss per record, and the arm's training file,
        records, steps, mean validation loss and the engine's own validation loss.
    """
    from tuneproof.search._common import prune_outputs
    from tuneproof.train import train

    arm_out, arm_cfg = out / name, load_config(_arm_config(cfg, path, val_path, steps, lr))
    res = train(arm_cfg, parent_run_id=parent_run_id, output_dir=arm_out, run_name=f"{cfg.name}/ab/{name}", console=console)
    losses = arm_val_losses(arm_cfg, res.model_dir, records, str(val_path))
    info = {"train_file": str(path), "train_records": res.data.get("train_records"), "steps": res.global_step,
            "val_loss": float(losses.mean()), "engine_val_loss": res.final_metrics.get("loss")}  # fmt: skip
    prune_outputs(arm_out)
    return losses, info


def write_val_losses(path: Path, records: list[Record], losses: dict[str, np.ndarray]) -> None:
    """One line per validation record: its id and each arm's loss."""
    with atomic_open(path) as f:
        for i, r in enumerate(records):
            f.write(json.dumps({"id": r.extra.get("id", r.id), **{k: float(v[i]) for k, v in losses.items()}}) + "\n")


def paired_ab(
    cfg: RunConfig, arms: dict[str, Path], val_path: Path, out: Path, *, steps: int, lr: float,
    parent_run_id: str | None = None, console: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """Train each arm ``steps`` steps at ``lr`` (same seed), score both on ``val_path``, decide.

    Args:
        cfg: the run's config (model, training settings, seed, ``eval.confidence`` and
            ``eval.bootstrap``); its data section is replaced per arm.
        arms: two arms, name -> training file (canonical fields, as the split writes them).
            The first is the intervention, kept unless worse beyond noise; the second the
            alternative.
        val_path: the validation records both arms are scored on.
        out: a folder; each arm trains in ``out/<name>`` (its model is deleted after scoring,
            ``train.json`` stays) and ``val_losses.jsonl`` holds the per-record losses.
        steps, lr: the budget, the same for both arms.
        parent_run_id: the MLflow run to nest the arms' runs under.
        console: a rich console.

    Returns:
        :func:`ab_decision`'s dict plus ``arms`` (per arm: training records, mean validation
        loss, steps trained), ``steps`` and ``lr``.
    """
    (a, path_a), (b, path_b) = arms.items()
    loaded = load_records(val_path)
    losses: dict[str, np.ndarray] = {}
    info: dict[str, dict[str, Any]] = {}
    for name, path in ((a, path_a), (b, path_b)):
        losses[name], info[name] = train_arm(cfg, name, path, val_path, loaded.records, out, steps=steps, lr=lr,
                                             parent_run_id=parent_run_id, console=console)  # fmt: skip
    write_val_losses(out / "val_losses.jsonl", loaded.records, losses)
    result = ab_decision(losses[a], losses[b], a=a, b=b, confidence=cfg.eval.confidence, resamples=cfg.eval.bootstrap,
                         seed=cfg.train.seed)  # fmt: skip
    return {**result, "arms": info, "steps": steps, "lr": lr, "val_records": len(loaded.records), "val_file": str(val_path)}


def replicated(first: dict[str, Any], second: dict[str, Any], *, change: str = "revert",
               otherwise: str = "curation is kept") -> dict[str, Any]:  # fmt: skip
    """The A/B's outcome when a first pair of trainings said ``change`` and a second pair, with
    another seed, was run to check it: ``change`` only when both say so.

    A bootstrap over validation records treats each arm's model as fixed; two short trainings
    also differ by their data order and initialisation, which no resampling of records shows.
    A decision that changes the plan (dropping curation: ``"revert"``; using augmentation:
    ``"keep"``) is acted on only when it holds for a second seed; else ``otherwise`` says what stands.

    Example:
        >>> replicated({"decision": "revert", "why": "a"}, {"decision": "keep", "why": "b", "difference": 0.01})["decision"]
        'keep'
    """
    out = {**first, "replication": {k: second.get(k) for k in ("decision", "why", "val_loss", "difference", "ci", "noise")}}
    if second["decision"] == change:
        out["why"] = f"{first['why']}; replicated with another seed ({second['why']})"
        return out
    out["decision"] = "keep" if change == "revert" else "revert"
    out["why"] = (f"a first pair of trainings said {first['why']}, but a second pair with another seed did not "
                  f"replicate it ({second['why']}): the difference is within the training's own noise, so {otherwise}")
    return out


def _texts(records: list[Record]) -> list[str]:
    from tuneproof.audit._base import normalize, record_text

    return [normalize(record_text(r)) for r in records]


def _heldout_copies(removed: list[Record], heldout: list[Record], cfg: RunConfig) -> set[int]:
    """Indices of removed records that are exact or near copies of a validation/test record.

    Near copies as the audit defines them (MinHash over word shingles, verified Jaccard of at
    least ``audit.jaccard_threshold``), so a row the audit would call a duplicate is one here.
    """
    from tuneproof.audit.dedup import near_duplicate_pairs

    texts_r, texts_h = _texts(removed), _texts(heldout)
    held = set(texts_h)
    out = {i for i, t in enumerate(texts_r) if t in held}
    n = len(texts_r)
    for i, j, _ in near_duplicate_pairs(texts_r + texts_h, cfg.audit_for_run):
        if (i < n) != (j < n):  # one removed row, one held-out record
            out.add(min(i, j))
    return out


def raw_training_rows(cfg: RunConfig, split_dir: Path, curate_dir: Path, work: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows curation removed that may train in the raw arm, and those that may not, with why.

    Excluded: leakage findings (they overlap the test data), and removed rows that duplicate
    a validation or test record: a ``duplicate_of`` pointing at a record now in val/test,
    the same normalized text, or a near copy (:func:`_heldout_copies`).

    Args:
        cfg: the run's config (``data.fields`` maps the removed rows' columns; the audit config
            gives the near-duplicate settings).
        split_dir: the split (val.jsonl and test.jsonl are held out).
        curate_dir: curation's removed.jsonl.
        work: a folder for the removed rows as a file the loader reads.

    Returns:
        ``(rows, excluded)``: rows in the split's format (canonical fields and ``id``), and
        ``{"counts": {reason: n}, "examples": {reason: [ids]}}``.
    """
    removed = [row for row in _read_jsonl(curate_dir / "removed.jsonl") if isinstance(row.get("record"), dict)]
    work.mkdir(parents=True, exist_ok=True)
    tmp = work / "removed_records.jsonl"
    tmp.write_text("".join(json.dumps(row["record"], ensure_ascii=False, default=str) + "\n" for row in removed), encoding="utf-8")
    loaded = load_records(tmp, fields=cfg.data.fields or None, rejects_path=work / "removed_unreadable.jsonl")
    line = {rec.id: int(rec.id.rsplit(":", 1)[1]) - 1 for rec in loaded.records}  # the row's index in ``removed``
    heldout = [r for part in ("val", "test") for r in load_records(split_dir / f"{part}.jsonl").records]
    held_texts = set(_texts(heldout))
    copies = _heldout_copies(loaded.records, heldout, cfg)
    originals = _original_texts(cfg, {d for row in removed for r in row["reasons"] if (d := r.get("duplicate_of"))})
    rows: list[dict[str, Any]] = []
    excluded: dict[str, list[str]] = {}
    for k, rec in enumerate(loaded.records):
        entry = removed[line[rec.id]]
        reasons = entry["reasons"]
        if any(r.get("check") == "leakage" for r in reasons):
            why = "leakage: overlaps the evaluation data"
        elif any(originals.get(r.get("duplicate_of")) in held_texts for r in reasons if r.get("duplicate_of")):
            why = "duplicate of a validation/test record (duplicate_of)"
        elif k in copies:
            why = "same or near-same text as a validation/test record"
        else:
            rows.append({"id": entry["id"], **rec.fields, **rec.extra})
            continue
        excluded.setdefault(why, []).append(entry["id"])
    unreadable = len(removed) - len(loaded.records)
    if unreadable:
        excluded["not readable with data.fields"] = [removed[i]["id"] for i in range(len(removed)) if i not in set(line.values())]
    return rows, {"counts": {k: len(v) for k, v in excluded.items()}, "examples": {k: v[:_EXAMPLES] for k, v in excluded.items()}}


def _original_texts(cfg: RunConfig, ids: set[str]) -> dict[str, str]:
    """Normalized text of the records of ``data.path`` named by ``ids`` (duplicate_of targets)."""
    if not ids:
        return {}
    from tuneproof.audit._base import normalize, record_text

    loaded = load_records(cfg.data.path, fields=cfg.data.fields or None)
    return {r.id: normalize(record_text(r)) for r in loaded.records if r.id in ids}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as f:
        return [row for line in f if line.strip() and isinstance(row := json.loads(line), dict)]


def reverted_train_path(cfg: RunConfig, ab_dir: Path) -> Path | None:
    """The raw training file when this run's curation A/B reverted curation, else None.

    Only when the A/B and curation are both on in ``cfg``: a stale ``ab.json`` from an earlier
    run with other switches never changes the training data.
    """
    on = cfg.pipeline.stages
    if not (on.get("curation_ab") and on.get("curate")):
        return None
    try:
        ab = json.loads((ab_dir / AB_FILE).read_text())
    except (OSError, ValueError):
        return None
    raw = ab_dir / RAW_TRAIN
    return raw if ab.get("decision") == "revert" and raw.is_file() else None


def ab_budget(cfg: RunConfig, sweep_json: Path, planned_steps: int | None) -> tuple[int, float, str]:
    """Steps, rate and the rate's source for the curation A/B: one lr-sweep run's budget.

    The rate is the sweep's ``best_lr``, not its ``train_lr``: the A/B's arms run exactly as
    many steps as each swept rate did, and ``best_lr`` is the rate that won runs of that
    length; ``train_lr`` is corrected for the final training's longer horizon. Without a
    sweep (switched off): ``train.lr`` or the engine's default for the method, for the
    steps the budget plans per swept rate.
    """
    if cfg.pipeline.stages.get("lr_sweep") and sweep_json.is_file():
        s = json.loads(sweep_json.read_text())
        return int(s["steps"]), float(s["best_lr"]), f"the lr sweep's best rate for runs of {s['steps']} steps (best_lr)"
    from tuneproof.search._sweep import DEFAULT_SWEEP_STEPS
    from tuneproof.train._engine import DEFAULT_LR

    steps = planned_steps or min(cfg.train.max_steps or DEFAULT_SWEEP_STEPS, DEFAULT_SWEEP_STEPS)
    if cfg.train.lr:
        return steps, cfg.train.lr, "train.lr (no lr sweep in this run)"
    return steps, DEFAULT_LR[cfg.model.method], f"the default {cfg.model.method} rate (no lr sweep in this run)"


def curation_ab(
    cfg: RunConfig, split_dir: Path, curate_dir: Path | None, out: Path, *, steps: int, lr: float, lr_source: str,
    parent_run_id: str | None = None, console: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """Curated against raw training data (:func:`paired_ab`), written to ``out/ab.json``.

    Arm ``curated`` trains on the split's train.jsonl; arm ``raw`` on it plus the removed rows
    that may train (:func:`raw_training_rows`), written to ``out/raw_train.jsonl``. Both are
    scored on the split's val.jsonl, drawn from the kept data. Skipped, with the reason, when
    curation did not run or removed nothing, or when no removed row may train.

    Returns:
        The content of ab.json: ``decision`` ("keep" or "revert"), ``skipped`` (None or why),
        and when it ran ``val_loss``, ``difference``, ``ci``, ``noise``, ``arms``, ``steps``,
        ``lr``, ``lr_source``, ``removed``, ``added_to_raw`` and ``excluded``.
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / RAW_TRAIN).unlink(missing_ok=True)
    manifest = curate_dir / "manifest.json" if curate_dir else None
    removed = json.loads(manifest.read_text())["counts"]["removed"] if manifest and manifest.is_file() else 0
    result: dict[str, Any] = {"decision": "keep", "skipped": None, "removed": removed}
    if curate_dir is None:
        result["skipped"] = "curation is off (pipeline.stages.curate: false)"
    elif not removed:
        result["skipped"] = "curation removed nothing"
    else:
        rows, excluded = raw_training_rows(cfg, split_dir, curate_dir, out)
        result.update(added_to_raw=len(rows), excluded=excluded)
        if not rows:
            result["skipped"] = (f"none of the {removed} removed rows may train: {excluded['counts']} (the raw arm would "
                                 "equal the curated one)")  # fmt: skip
        else:
            train_text = (split_dir / "train.jsonl").read_text(encoding="utf-8")
            extra = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)
            atomic_write(out / RAW_TRAIN, train_text + ("" if not train_text or train_text.endswith("\n") else "\n") + extra)
            arms = {"curated": split_dir / "train.jsonl", "raw": out / RAW_TRAIN}
            ab = paired_ab(cfg, arms, split_dir / "val.jsonl", out, steps=steps, lr=lr, parent_run_id=parent_run_id,
                           console=console)  # fmt: skip
            if ab["decision"] == "revert":
                # The interval covers the validation records, not the training's own randomness
                # (data order, seed): a revert must replicate with another seed before it is acted on.
                again = cfg.model_copy(update={"train": cfg.train.model_copy(update={"seed": cfg.train.seed + 1})})
                second = paired_ab(again, arms, split_dir / "val.jsonl", out / "replication", steps=steps, lr=lr,
                                   parent_run_id=parent_run_id, console=console)  # fmt: skip
                ab = replicated(ab, second)
            result.update(ab, lr_source=lr_source)
    atomic_write(out / AB_FILE, json.dumps(result, indent=1, default=str) + "\n")
    return result
