"""What loading produces: the records it kept, the rows it rejected and why."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from tuneproof._io import atomic_open


class Schema(str, Enum):
    """The shape of a training example, named after the fields it has."""

    TEXT = "text"
    PROMPT_COMPLETION = "prompt_completion"
    ALPACA = "alpaca"
    CHAT = "chat"
    TEXT_LABEL = "text_label"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Record:
    """One valid example.

    Attributes:
        id: ``"<file name>:<line>"`` (``"<file name>:<row index>"`` for Parquet and datasets).
        schema: the schema the example was checked against.
        fields: the canonical fields of ``schema`` only (``text``, ``prompt``, ``messages``...),
            already validated.
        extra: the row's other columns, unchanged and unchecked (e.g. a list of acceptable
            ``answers`` that evaluation scores against). Nothing in a row is dropped.
    """

    id: str
    schema: Schema
    fields: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The ``text`` field of a TEXT or TEXT_LABEL record."""
        return self._field("text")

    @property
    def label(self) -> str | int | bool:
        """The ``label`` field of a TEXT_LABEL record."""
        return self._field("label")

    def _field(self, name: str) -> Any:
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(
                f"record {self.id} is a {self.schema.value} record and has no {name!r} field; "
                f"its fields are: {', '.join(self.fields)}"
            ) from None


@dataclass(frozen=True)
class Rejected:
    """A row that could not become a record.

    Attributes:
        id: the id the record would have had.
        line: the physical line (JSONL, CSV) or the 0-based row index (Parquet, datasets).
        reason: a sentence naming the problem and, when there is one, the fix.
        raw: the row as it appeared in the file, cut to about 500 characters.
        kind: a short category such as ``"broken JSON"``, used to count rejects by reason.
    """

    id: str
    line: int
    reason: str
    raw: str
    kind: str = ""


@dataclass
class LoadResult:
    """Everything :func:`load_records` read from one data source.

    Attributes:
        path: the file or directory that was read.
        format: ``"jsonl"``, ``"csv"``, ``"parquet"`` or ``"datasets"``.
        schema: the schema every record follows.
        field_map: canonical field name -> the source column it was read from.
        records: the valid rows, in file order.
        rejected: the rows that were not kept, in file order.
        total_rows: the number of data rows in the source; always
            ``len(records) + len(rejected)``.
        split: the DatasetDict split that was read, if any.
    """

    path: Path
    format: str
    schema: Schema
    field_map: dict[str, str]
    records: list[Record]
    rejected: list[Rejected]
    total_rows: int
    split: str | None = None

    def __post_init__(self) -> None:
        # The promise that no row is lost silently is checked here, once, for every reader.
        if self.total_rows != len(self.records) + len(self.rejected):
            raise ValueError(
                f"total_rows={self.total_rows} but there are {len(self.records)} records and "
                f"{len(self.rejected)} rejected rows; every row must be one or the other."
            )

    @property
    def name(self) -> str:
        """The source's name as it appears in record ids, e.g. ``train.jsonl`` or ``ds/test``."""
        name = self.path.name or self.path.resolve().name
        return f"{name}/{self.split}" if self.split else name

    def write_rejects(self, path: str | Path) -> Path:
        """Write one JSON object per rejected row (``id``, ``line``, ``reason``, ``raw``).

        Args:
            path: where to write the JSONL file; parent directories are created.

        Returns:
            The path written.

        Example:
            >>> result = load_records("train.jsonl")  # doctest: +SKIP
            >>> result.write_rejects("runs/rejects.jsonl")  # doctest: +SKIP
            PosixPath('runs/rejects.jsonl')
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path) as f:
            for r in self.rejected:
                row = {"id": r.id, "line": r.line, "reason": r.reason, "raw": r.raw}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        return path

    def summary(self) -> str:
        """One line for people, e.g. ``"t.jsonl: 98 records (text), 2 rejected: 2 blank line"``."""
        head = (
            f"{self.name}: {len(self.records)} records ({self.schema.value}), "
            f"{len(self.rejected)} rejected"
        )
        return f"{head}: {count_reasons(self.rejected)}" if self.rejected else head


def count_reasons(rejected: list[Rejected], top: int | None = None) -> str:
    """``"2 broken JSON, 1 blank line"``: rejects counted by kind, most frequent first."""
    counts = Counter(r.kind or r.reason for r in rejected)
    return ", ".join(f"{n} {kind}" for kind, n in counts.most_common(top))
