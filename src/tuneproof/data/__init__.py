"""Load training data from JSONL, CSV, Parquet or a saved ``datasets`` directory.

:func:`load_records` reads one source, detects its schema from the column names (or takes
the one forced by ``schema=`` / the mapping in ``fields=``), and sorts every row into a
:class:`Record` or a :class:`Rejected` with a reason. No row is lost silently:
``len(result.records) + len(result.rejected) == result.total_rows``.

Example:
    >>> from tuneproof.data import load_records
    >>> result = load_records("train.jsonl", rejects_path="runs/rejects.jsonl")  # doctest: +SKIP
    >>> print(result.summary())  # doctest: +SKIP
    train.jsonl: 98 records (prompt_completion), 2 rejected: 1 broken JSON, 1 missing field 'completion'
"""

from __future__ import annotations

from tuneproof.data._load import load_records
from tuneproof.data._records import LoadResult, Record, Rejected, Schema
from tuneproof.data._schema import detect_schema

__all__ = [
    "LoadResult",
    "Record",
    "Rejected",
    "Schema",
    "detect_schema",
    "load_records",
]
