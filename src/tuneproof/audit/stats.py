"""Dataset-level statistics: size, length distribution and class balance."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from tuneproof.audit._base import completion_text, record_text
from tuneproof.data import LoadResult, Record, Schema

__all__ = ["IMBALANCE_RATIO", "dataset_stats"]

IMBALANCE_RATIO = 10.0  # largest class / smallest class above this is flagged


def _distribution(values: Sequence[int]) -> dict[str, Any]:
    if not values:
        return {"count": 0}
    arr = np.asarray(values)
    qs = np.percentile(arr, [5, 25, 50, 75, 95])
    return {
        "count": len(arr),
        "min": int(arr.min()),
        "p5": float(qs[0]), "p25": float(qs[1]), "median": float(qs[2]), "p75": float(qs[3]), "p95": float(qs[4]),
        "max": int(arr.max()),
        "mean": round(float(arr.mean()), 2),
    }  # fmt: skip


def dataset_stats(loaded: LoadResult, records: Sequence[Record], token_counts: Sequence[int] | None = None) -> dict[str, Any]:
    """Size, schema, unreadable rows, word (and token) length distribution, class balance.

    ``problems`` lists dataset-level findings, e.g. a class imbalance above 10:1.
    """
    words = [len(record_text(r).split()) for r in records]
    out: dict[str, Any] = {
        "source": loaded.name,
        "format": loaded.format,
        "schema": loaded.schema.value,
        "rows": loaded.total_rows,
        "records": len(records),
        "unreadable": len(loaded.rejected),
        "words": _distribution(words),
        "problems": [],
    }
    if records and completion_text(records[0]) is not None:
        out["completion_words"] = _distribution([len((completion_text(r) or "").split()) for r in records])
    if token_counts is not None:
        out["tokens"] = _distribution(list(token_counts))
    if loaded.schema == Schema.TEXT_LABEL and records:
        counts = Counter(str(r.label) for r in records)
        big, small = max(counts.values()), min(counts.values())
        ratio = big / small
        out["classes"] = dict(counts.most_common())
        out["imbalance_ratio"] = round(ratio, 2)
        if ratio > IMBALANCE_RATIO:
            out["problems"].append(
                f"class imbalance: the largest class has {ratio:.1f}x the records of the smallest "
                f"({dict(counts.most_common())}); consider class weights or more minority examples."
            )
        if len(counts) < 2:
            out["problems"].append(f"only one class ({next(iter(counts))!r}); a classifier needs at least two.")
    if len(records) < 100:
        out["problems"].append(f"only {len(records)} records; fine-tuning usually needs a few hundred or more.")
    return out
