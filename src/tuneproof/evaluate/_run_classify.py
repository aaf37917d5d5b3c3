"""Classification evaluation: raw base (seeded head), linear probe (the reference) and tuned."""

from __future__ import annotations

from typing import Any

import numpy as np

from tuneproof.data import Record, load_records
from tuneproof.errors import DataError, ModelLoadError
from tuneproof.evaluate._api import ModelRun, release
from tuneproof.evaluate._classify import (
    ClassScores,
    check_text_label,
    classification_metrics,
    embed,
    fit_probe,
    label_ids,
    predict_proba,
    probe_proba,
)
from tuneproof.evaluate._loading import is_adapter, load_tuned, read_labels
from tuneproof.evaluate._references import classification_references
from tuneproof.models import inference_device, load_model, resolve_model

_SHOW_CHARS = 300


def run_classification(
    base: Any, tuned: Any, records: list[Record], source: str, primary: str, ui: Any,
    *, train: Any, fields: Any, labels: list[str] | None, seed: int, batch_size: int, max_length: int,
) -> ModelRun:  # fmt: skip
    if train is None:
        raise DataError(
            "classification evaluation compares the tuned model with a linear probe on the base model's "
            "frozen embeddings, fit on the training split, but no training split was given. "
            "Fix: pass --train TRAIN_FILE (or train= in Python), the data the model was tuned on."
        )
    check_text_label(records, source)
    train_records = load_records(train, fields=fields or None).records
    check_text_label(train_records, str(train))
    labels = labels or (None if is_adapter(tuned) else read_labels(tuned))
    if labels is None:
        # The training engine's rule: label names sorted, when the config names none.
        labels = sorted({str(r.label) for r in train_records})
    y = label_ids(records, labels, source)
    y_train = label_ids(train_records, labels, str(train))
    n_classes = len(labels)
    if primary == "auroc" and n_classes != 2:
        raise DataError(
            f"metric auroc is for binary tasks, but there are {n_classes} labels {labels}. "
            "Fix: use --metric accuracy or macro_f1."
        )
    texts = [str(r.text) for r in records]
    proba: dict[str, np.ndarray] = {}
    with ui.progress() as progress:
        model, tok = load_model(base, "classification", labels=labels, seed=seed)
        model.eval().to(inference_device())
        proba["base"] = predict_proba(model, tok, texts, max_length=max_length, batch_size=batch_size,
                                      progress=progress, label="base (untrained head)")  # fmt: skip
        base_dir = resolve_model(base).path
        task = progress.add_task("probe: embed train + test", total=1, rate="")
        train_x, pooling = embed(base_dir, model, tok, [str(r.text) for r in train_records],
                                 max_length=max_length, batch_size=batch_size)  # fmt: skip
        test_x, _ = embed(base_dir, model, tok, texts, max_length=max_length, batch_size=batch_size)
        progress.advance(task)
        release(model)
        probe = fit_probe(train_x, y_train, n_classes, seed)
        proba["probe"] = probe_proba(probe, test_x, n_classes)
        model, tok = load_tuned(tuned, base, "classification", labels=labels, seed=seed)
        model.eval().to(inference_device())
        if model.config.num_labels != n_classes:
            raise ModelLoadError(
                f"the tuned model {tuned} has {model.config.num_labels} classes but the labels are "
                f"{labels}. Fix: pass the label names in the model's index order (--labels)."
            )
        proba["tuned"] = predict_proba(model, tok, texts, max_length=max_length, batch_size=batch_size,
                                       progress=progress, label="tuned")  # fmt: skip
        release(model)

    scores = {who: ClassScores(p) for who, p in proba.items()}
    metrics = {
        who: {k: float(v[0]) for k, v in classification_metrics(y, s, n_classes).items()} for who, s in scores.items()
    }
    per_record = {who: {"accuracy": (s.pred == y).astype(float)} for who, s in scores.items()}
    statistics = {
        who: {m: _stat(y, s, n_classes, m) for m in ("accuracy", "macro_f1", "auroc")} for who, s in scores.items()
    }
    fields_out = [
        {
            "text": texts[i][:_SHOW_CHARS],
            "label": labels[y[i]],
            "predicted": {who: labels[s.pred[i]] for who, s in scores.items()},
            "p_label": {who: float(s.proba[i, y[i]]) for who, s in scores.items()},
        }
        for i in range(len(records))
    ]
    details = {
        "labels": labels,
        "probe": {
            "model": "logistic regression on standardised frozen embeddings",
            "pooling": pooling,
            "train": str(train),
            "n_train": len(train_records),
            "train_accuracy": float(probe.score(train_x, y_train)),
        },
        "base_note": "the raw base has an untrained (seeded) head; the verdict compares against the probe",
    }
    forgetting = {
        "status": "not_applicable",
        "reason": "a sequence classifier has no language-model head, so there is no perplexity to compare",
    }
    cheap = classification_references(y_train, y, labels, primary)
    return ModelRun("probe", metrics, per_record, fields_out, forgetting, details, statistics, cheap)


def _stat(y: np.ndarray, scores: ClassScores, n_classes: int, metric: str) -> Any:
    return lambda weights: classification_metrics(y, scores, n_classes, weights)[metric]
