"""The reference scored on the test set before any training, and read back by the evaluation.

The SFT reference is the base model zero-shot. Scoring it before training gives the preflight
its measured per-record variance (the minimum detectable effect), and the evaluation reuses the
scores instead of scoring the base again. Both go through :func:`score_sft_model`, the
evaluation's own code, so reused scores equal fresh ones. What was scored (model, metric,
generation budget, token budget, bf16, batch, seed, limit and the test file's sha256) is hashed
into ``baseline.json``; the evaluation reuses the scores only when its own settings hash the
same and the record ids match in order, and otherwise scores again and says why.

Classification's reference is a linear probe on the base model's frozen embeddings, fit on
the training split. :func:`score_probe_baseline` fits and scores it on test before training
the same way the evaluation does (same embeddings, same probe, same seed), so the preflight's
minimum detectable effect comes from the probe's own per-record accuracy. The evaluation fits
the probe again on the data the tuned model actually trained on (the raw data when the
curation A/B reverted curation), so its verdict never depends on this file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from tuneproof._io import atomic_open
from tuneproof.config import EvalConfig
from tuneproof.evaluate._api import GENERATION_METRICS, _clean, _load_test, _Ui, _write_json, release
from tuneproof.evaluate._run_sft import SftScores, score_sft_model, sft_scores
from tuneproof.evaluate._sft import sft_examples

__all__ = ["load_base_scores", "score_baseline", "score_probe_baseline", "scoring_settings"]


def _sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def scoring_settings(base: Any, data: Any, primary: str, cfg: EvalConfig, *, seed: int, batch_size: int,
                     max_length: int, bf16: bool) -> dict[str, Any]:  # fmt: skip
    """Everything the base model's SFT scores depend on; equal settings give equal scores."""
    return {"task": "sft", "model": str(base), "metric": primary, "data_sha256": _sha256(data), "limit": cfg.limit,
            "max_new_tokens": cfg.max_new_tokens if primary in GENERATION_METRICS else None,
            "max_length": max_length, "bf16": bool(bf16), "batch_size": batch_size, "seed": seed}  # fmt: skip


def _hash(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def score_baseline(
    base: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *, config: EvalConfig | None = None,
    seed: int = 0, batch_size: int = 8, max_length: int = 512, bf16: bool = False, console: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """Score the base model zero-shot on the SFT test records, as :func:`tuneproof.evaluate.evaluate` would.

    Writes ``out/records.jsonl`` (per record: ``id``, ``base`` with each per-record metric,
    ``completion_tokens`` and, when generated, ``generation``) and ``out/baseline.json``
    (model, metric, mean, n, the metrics, the scoring settings and their ``config_hash``).
    The defaults of ``batch_size`` and ``max_length`` are the evaluation's.

    Returns:
        The content of ``baseline.json``.

    Raises:
        DataError: an empty or unreadable test set, or records without a completion.
    """
    from tuneproof.models import inference_device, load_model

    cfg = config or EvalConfig()
    primary = cfg.metric or "nll"
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = _load_test(data, None, None, cfg.limit, out_dir, console)
    examples = sft_examples(records, str(data))
    ui = _Ui(console)
    with ui.progress() as progress:
        model, tok = load_model(base, "sft", seed=seed)
        model.eval().to(inference_device())
        s = score_sft_model(model, tok, examples, primary, cfg, batch_size=batch_size, max_length=max_length,
                            bf16=bf16, progress=progress, label="base (before training)")  # fmt: skip
        release(model)
    settings = scoring_settings(base, data, primary, cfg, seed=seed, batch_size=batch_size, max_length=max_length, bf16=bf16)
    with atomic_open(out_dir / "records.jsonl") as f:
        for i, ex in enumerate(examples):
            row: dict[str, Any] = {"id": ex.id, "base": {k: float(v[i]) for k, v in s.per_record.items()},
                                   "completion_tokens": s.counts[i]}  # fmt: skip
            if s.generations is not None:
                row["generation"] = s.generations[i]
            f.write(json.dumps(_clean(row), ensure_ascii=False) + "\n")
    info = {"model": str(base), "reference": "base", "description": "the base model zero-shot, same prompt format",
            "metric": primary, "mean": s.metrics.get(primary), "n": len(examples), "metrics": s.metrics, "data": str(data),
            "settings": settings, "config_hash": _hash(settings), "details": s.details}  # fmt: skip
    _write_json(out_dir / "baseline.json", _clean(info))
    return info


def load_base_scores(path: str | os.PathLike, records: list, source: str, settings: dict[str, Any]) -> tuple[SftScores | None, str]:
    """The base model's scores from a baseline ``records.jsonl``, when they fit this evaluation.

    Args:
        path: ``records.jsonl`` written by :func:`score_baseline` (``baseline.json`` beside it).
        records: the evaluation's test records, in order.
        source: the test file (for error messages).
        settings: :func:`scoring_settings` of this evaluation.

    Returns:
        ``(scores, why)``: the scores and an empty string, or None and why they cannot be reused.
    """
    rec_path = Path(path)
    info_path = rec_path.with_name("baseline.json")
    if not rec_path.is_file() or not info_path.is_file():
        return None, f"{rec_path if not rec_path.is_file() else info_path} does not exist"
    info = json.loads(info_path.read_text(encoding="utf-8"))
    if info.get("metric") != settings["metric"]:
        return None, f"{info_path} scored {info.get('metric')!r}, this evaluation's metric is {settings['metric']!r}"
    if info.get("config_hash") != _hash(settings):
        before = info.get("settings") or {}
        diff = [f"{k} {before.get(k)!r} -> {v!r}" for k, v in settings.items() if before.get(k) != v]
        return None, f"{info_path} was scored with other settings ({'; '.join(diff) or 'unknown'})"
    rows = [json.loads(line) for line in rec_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    ids = [str(r.get("id")) for r in rows]
    if ids != [str(r.id) for r in records]:
        return None, f"{rec_path} holds other records than {source} ({len(ids)} ids against {len(records)}, or another order)"
    examples = sft_examples(records, source)
    generations = [r["generation"] for r in rows] if all("generation" in r for r in rows) else None
    if settings["max_new_tokens"] is not None and generations is None:
        return None, f"{rec_path} holds no generations, and the metric {settings['metric']!r} needs them"
    return sft_scores([r["base"]["nll"] for r in rows], [int(r["completion_tokens"]) for r in rows], generations,
                      [ex.references for ex in examples], settings["metric"], info.get("details") or {}), ""  # fmt: skip


def score_probe_baseline(
    base: str | os.PathLike, train: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *,
    labels: list[str] | None = None, config: EvalConfig | None = None, seed: int = 0, batch_size: int = 8,
    max_length: int = 512, console: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """Fit classification's reference, the linear probe, on ``train`` and score it on the test
    records ``data`` before any training, as :func:`tuneproof.evaluate.evaluate` would.

    Writes ``out/records.jsonl`` (per record: ``id``, ``base`` with its ``accuracy`` 0 or 1,
    the reference's score under the same key as the SFT baseline's, and ``predicted``) and
    ``out/baseline.json`` (``reference: "probe"``, its description, accuracy, n, labels).

    Raises:
        DataError: unreadable or unlabelled records, or a test label the training data lacks.
    """
    from tuneproof.data import load_records
    from tuneproof.evaluate._classify import check_text_label, embed, fit_probe, label_ids, probe_proba
    from tuneproof.models import inference_device, load_model, resolve_model

    cfg = config or EvalConfig()
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = _load_test(data, None, None, cfg.limit, out_dir, console)
    check_text_label(records, str(data))
    train_records = load_records(train).records
    check_text_label(train_records, str(train))
    labels = list(labels or sorted({str(r.label) for r in train_records}))  # the training engine's rule
    y, y_train = label_ids(records, labels, str(data)), label_ids(train_records, labels, str(train))
    model, tok = load_model(base, "classification", labels=labels, seed=seed)
    model.eval().to(inference_device())
    base_dir = resolve_model(base).path
    kw = {"max_length": max_length, "batch_size": batch_size}
    train_x, pooling = embed(base_dir, model, tok, [str(r.text) for r in train_records], **kw)
    test_x, _ = embed(base_dir, model, tok, [str(r.text) for r in records], **kw)
    release(model)
    pred = probe_proba(fit_probe(train_x, y_train, len(labels), seed), test_x, len(labels)).argmax(1)
    correct = (pred == y).astype(float)
    with atomic_open(out_dir / "records.jsonl") as f:
        for r, c, p in zip(records, correct, pred):
            f.write(json.dumps({"id": r.id, "base": {"accuracy": float(c)}, "predicted": labels[int(p)]}) + "\n")
    info = {"model": str(base), "reference": "probe", "metric": "accuracy", "mean": float(correct.mean()),
            "description": "a linear probe on the base model's frozen embeddings, fit on the training split",
            "n": len(records), "n_train": len(train_records), "labels": labels, "pooling": pooling, "data": str(data),
            "train": str(train)}  # fmt: skip
    _write_json(out_dir / "baseline.json", _clean(info))
    return info
