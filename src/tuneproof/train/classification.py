"""Classification task: text + label records as token ids and a class index, with a label map."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuneproof.data import Record, Schema
from tuneproof.errors import DataError

__all__ = ["ClassificationCollator", "accuracy_metrics", "encode_classification", "label_map"]


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


def accuracy_metrics(eval_pred: Any) -> dict[str, float]:
    """Accuracy of the argmax class, for ``Trainer(compute_metrics=...)``."""
    import numpy as np

    logits, labels = eval_pred.predictions, eval_pred.label_ids
    if isinstance(logits, (list, tuple)):
        logits = logits[0]
    return {"accuracy": float((np.asarray(logits).argmax(-1) == np.asarray(labels)).mean())}
