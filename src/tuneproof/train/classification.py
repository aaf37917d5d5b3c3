"""Classification task: text + label records as token ids and a class index, with a label map."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuneproof.data import Record, Schema
from tuneproof.errors import DataError

__all__ = ["ClassificationCollator", "SelectionMetrics", "encode_classification", "label_map", "record_count", "record_loss"]


def label_map(records: list[Record], labels: list[str] | None) -> list[str]:
    """The label names in index order: ``labels`` when given, else the sorted labels of the data.

    Raises:
        DataError: a record's label is not in ``labels`` (naming the records and the fix), or
            the data holds fewer than two labels.
    """
    for r in records[:1]:
        if r.schema != Schema.TEXT_LABEL:
            raise DataError(
                f"record {r.id}: task classification needs text+label records, but the data is "
                f"{r.schema.value}. Fix: use task: sft, or map your columns with data.fields "
                "(e.g. {text: review, label: sentiment})."
            )
    found = sorted({str(r.label) for r in records})
    if labels is None:
        if len(found) < 2:
            raise DataError(
                f"the training data holds a single label {found}; a classifier needs at least two. "
                "Fix: check the label column (data.fields.label)."
            )
        return found
    known = set(labels)
    missing = [r for r in records if str(r.label) not in known]
    if missing:
        shown = ", ".join(f"{r.id} ({r.label!r})" for r in missing[:5])
        names = sorted({str(r.label) for r in missing})
        raise DataError(
            f"{len(missing)} record(s) have labels missing from model.labels {labels}: {shown}"
            f"{' ...' if len(missing) > 5 else ''}. Missing labels: {names}. Fix: add them to "
            "model.labels, remove those records, or leave model.labels unset to use the data's labels."
        )
    return list(labels)


def encode_classification(
    record: Record, tokenizer: Any, max_length: int, label2id: dict[str, int]
) -> tuple[dict[str, Any], bool]:
    """Token ids (with the model's special tokens) and the class index of one record."""
    ids = tokenizer(str(record.text), add_special_tokens=True)["input_ids"]
    truncated = len(ids) > max_length
    if truncated:
        # Keep the closing special token (e.g. [SEP]) that the classifier was trained to see.
        ids = ids[: max_length - 1] + ids[-1:]
    return {"input_ids": ids, "labels": label2id[str(record.label)]}, truncated


@dataclass
class ClassificationCollator:
    """Pad one length-grouped batch of classification examples."""

    pad_id: int

    def __call__(self, items: list[Any]) -> dict[str, Any]:
        from tuneproof.train._batching import pad_batch

        examples = items[0] if len(items) == 1 and isinstance(items[0], list) else items
        return pad_batch(examples, self.pad_id)


def record_loss(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
    """Cross-entropy of each record's class, averaged over the records (:func:`~tuneproof.train._batching.per_unit`)."""
    import torch.nn.functional as F

    from tuneproof.train._batching import per_unit

    logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
    loss = F.cross_entropy(logits.float(), labels.to(logits.device), reduction="sum")
    return per_unit(loss, labels.numel(), num_items_in_batch)


def record_count(labels: Any) -> int:
    """The records of a batch (one class label each)."""
    return int(labels.numel())


# The selection score is metric - TIE_BREAK * min(record_loss, LOSS_CAP): at most 1e-5 below the
# metric, less than one record's share of the accuracy or macro-F1 of any validation split
# under 100,000 records, so the loss only orders checkpoints whose metric is equal.
TIE_BREAK = 1e-6
LOSS_CAP = 10.0


class SelectionMetrics:
    """``Trainer(compute_metrics=...)`` for classification: the evaluation's metrics on validation.

    Returns accuracy, macro_f1, auroc (binary tasks), ``record_loss`` (the cross-entropy
    averaged over records, from the logits: the same value as the evaluation's ``loss``, see
    :class:`~tuneproof.train._batching.UnitWeightedLoss`) and, when ``metric`` is set, ``selection``: ``metric`` with
    ties broken by the lower ``record_loss`` (an AUROC that a
    one-class split leaves undefined counts 0, so the loss alone orders those checkpoints).
    ``metric_for_best_model="eval_selection"`` then keeps the checkpoint the evaluation will
    judge best; early stopping counts its patience on the same score, but only a change larger
    than the tie-break resets it (``_engine.patience_threshold``).

    Example:
        >>> import numpy as np
        >>> from types import SimpleNamespace
        >>> pred = SimpleNamespace(predictions=np.array([[2.0, 0.0], [0.0, 1.0]]), label_ids=np.array([0, 0]))
        >>> m = SelectionMetrics("accuracy")(pred)
        >>> m["accuracy"], round(m["selection"], 4)
        (0.5, 0.5)
    """

    def __init__(self, metric: str | None):
        self.metric = metric

    def __call__(self, eval_pred: Any) -> dict[str, float]:
        import numpy as np

        from tuneproof.evaluate._classify import ClassScores, classification_metrics

        logits, labels = eval_pred.predictions, eval_pred.label_ids
        if isinstance(logits, (list, tuple)):
            logits = logits[0]
        logits = np.asarray(logits, dtype=float)
        labels = np.asarray(labels).astype(int)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
        scores = ClassScores(np.exp(logp))
        out = {k: float(v[0]) for k, v in classification_metrics(labels, scores, logits.shape[-1]).items()}
        out["record_loss"] = loss = float(-logp[np.arange(len(labels)), labels].mean())
        if self.metric is None:
            return out
        if self.metric not in out:
            raise ValueError(
                f"eval.metric {self.metric!r} cannot pick checkpoints for {logits.shape[-1]} classes "
                f"(validation gives {sorted(out)}). Fix: set eval.metric to one of them, or "
                "train.early_stopping.monitor: val_loss."
            )
        value = out[self.metric]
        out["selection"] = (value if np.isfinite(value) else 0.0) - TIE_BREAK * min(loss, LOSS_CAP)
        return out
