"""load_records: read a source, settle its schema, and sort every row into kept or rejected."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from tuneproof.data._readers import BLANK_LINE, RawRow, open_source
from tuneproof.data._records import LoadResult, Record, Rejected, Schema, count_reasons
from tuneproof.data._schema import RowProblem, coerce_schema, resolve_schema, validate_row
from tuneproof.errors import DataError

# JSONL has no header: its columns are the keys of the first valid objects. Enough rows to
# see keys that some rows leave out, few enough to cost nothing.
_PEEK_OBJECTS = 50
_RAW_CHARS = 500


def load_records(
    path: str | Path,
    *,
    fields: dict[str, str] | None = None,
    split: str | None = None,
    rejects_path: str | Path | None = None,
    schema: Schema | str | None = None,
) -> LoadResult:
    """Read a JSONL, CSV or Parquet file, or a ``save_to_disk`` directory, into checked records.

    Every data row ends up either in ``records`` or in ``rejected`` with a reason, so
    ``len(records) + len(rejected) == total_rows``. The schema is detected from the column
    names unless ``schema`` forces one; ``fields`` maps canonical names to other columns.

    Args:
        path: a ``.jsonl``/``.ndjson``, ``.csv`` or ``.parquet`` file, or a directory written
            by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``.
        fields: canonical field name -> source column, e.g. ``{"prompt": "question"}``.
        split: the split of a DatasetDict directory (default ``"train"``); only for those.
        rejects_path: if given, the rejected rows are written there as JSONL (also when
            every row is rejected, before the error is raised).
        schema: force a schema instead of detecting it.

    Returns:
        A :class:`LoadResult` with the records, the rejected rows and the schema used.

    Raises:
        DataError: the path is missing, empty or of an unsupported type; the schema cannot
            be detected or ``fields`` names a missing column; or every row was rejected.

    Example:
        >>> result = load_records("train.jsonl", fields={"prompt": "question"})  # doctest: +SKIP
        >>> result.summary()  # doctest: +SKIP
        "train.jsonl: 98 records (prompt_completion), 2 rejected: 2 broken JSON"
    """
    path = Path(path)
    try:
        return _load(path, fields, split, rejects_path, schema)
    except OSError as exc:  # unreadable file, permissions, a disk error mid-read
        raise DataError(
            f"{path}: cannot be read ({exc.strerror or exc}); check that the file exists, "
            "that you may read it, and that the disk is healthy."
        ) from None


def _load(
    path: Path,
    fields: dict[str, str] | None,
    split: str | None,
    rejects_path: str | Path | None,
    schema: Schema | str | None,
) -> LoadResult:
    forced = coerce_schema(schema) if schema is not None else None
    source = open_source(path, split)
    head, objects = _peek(source.rows, _PEEK_OBJECTS)
    if not head:
        raise DataError(f"{source.name}: {source.no_rows}")
    if not objects and all(r.problem is not None and r.problem.kind == BLANK_LINE for r in head):
        raise DataError(f"{source.name}: the file holds only blank lines; it has no data rows.")

    # No valid object anywhere means every row is rejected below, whatever the schema.
    resolved, field_map = forced or Schema.TEXT, {}
    if objects:
        columns = source.columns if source.columns is not None else _union_keys(objects)
        try:
            resolved, field_map = resolve_schema(columns, fields, forced)
        except DataError as exc:
            raise DataError(f"{source.name}: {exc}") from None

    used = set(field_map.values())
    records: list[Record] = []
    rejected: list[Rejected] = []
    for row in itertools.chain(head, source.rows):
        problem = row.problem
        if problem is None and row.value is not None:
            try:
                checked = validate_row(row.value, resolved, field_map)
                extra = {k: v for k, v in row.value.items() if k not in used}
                records.append(Record(row.id, resolved, checked, extra))
                continue
            except RowProblem as exc:
                problem = exc
        rejected.append(_reject(row, problem))

    result = LoadResult(
        path=path,
        format=source.format,
        schema=resolved,
        field_map=field_map,
        records=records,
        rejected=rejected,
        total_rows=len(records) + len(rejected),
        split=source.split,
    )
    if rejects_path is not None:
        result.write_rejects(rejects_path)
    if not records:
        where = f" Each row's reason is in {rejects_path}." if rejects_path is not None else ""
        first = rejected[0]
        raise DataError(
            f"{source.name}: all {len(rejected)} rows were rejected "
            f"({count_reasons(rejected, top=3)}), so there is nothing to use. "
            f"The first, {first.id}: {first.reason}{where}"
        )
    return result


def _peek(rows: Any, wanted: int) -> tuple[list[RawRow], list[dict[str, Any]]]:
    """Read rows until ``wanted`` valid objects are seen or the source ends."""
    head: list[RawRow] = []
    objects: list[dict[str, Any]] = []
    for row in rows:
        head.append(row)
        if row.value is not None:
            objects.append(row.value)
            if len(objects) >= wanted:
                break
    return head, objects


def _union_keys(objects: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(k for obj in objects for k in obj))


def _reject(row: RawRow, problem: RowProblem) -> Rejected:
    # Lone surrogates (undecodable CSV bytes) cannot be written as UTF-8: show them as U+FFFD.
    try:
        raw = row.raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a surrogate that stands for no byte, e.g. from a JSON escape
        raw = row.raw.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if len(raw) > _RAW_CHARS:
        raw = raw[: _RAW_CHARS - 3] + "..."
    return Rejected(row.id, row.line, problem.reason, raw, problem.kind)
