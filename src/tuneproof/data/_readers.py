"""Readers: turn a file or a saved dataset into rows, one per line or row index.

A reader never drops a row. A row it cannot parse comes out with a ``problem`` instead of a
``value``, so that the loader can count it as rejected.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneproof.data._schema import RowProblem
from tuneproof.errors import DataError

BLANK_LINE = "blank line"
_UTF8_BOM = b"\xef\xbb\xbf"
_BATCH_ROWS = 1024
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}
_ACCEPTED = (
    "tuneproof reads .jsonl or .ndjson (one JSON object per line), .csv (with a header row), "
    ".parquet, or a directory written by datasets' save_to_disk"
)
_RESAVE_UTF8 = "re-save the file with UTF-8 encoding"


@dataclass(frozen=True)
class RawRow:
    """One data row before schema checks: a ``value``, or the ``problem`` that prevented one."""

    line: int
    id: str
    value: dict[str, Any] | None
    problem: RowProblem | None = None
    text: str | None = None

    @property
    def raw(self) -> str:
        """The row as text: the line(s) from the file, or the row as JSON for Arrow sources."""
        if self.text is not None:
            return self.text
        return json.dumps(self.value, ensure_ascii=False, default=str)


@dataclass
class Source:
    """An opened data source.

    Attributes:
        format: ``"jsonl"``, ``"csv"``, ``"parquet"`` or ``"datasets"``.
        name: the id prefix, e.g. ``train.jsonl`` or ``ds/train``.
        columns: the column names when the format declares them (CSV header, Arrow schema);
            None for JSONL, whose keys are read from the rows.
        rows: every data row, in order.
        no_rows: the message for a source that has no data rows at all.
        split: the DatasetDict split that was chosen, if any.
    """

    format: str
    name: str
    columns: list[str] | None
    rows: Iterator[RawRow]
    no_rows: str
    split: str | None = None


def open_source(path: Path, split: str | None) -> Source:
    """Open ``path`` with the reader its extension (or being a directory) calls for.

    Raises:
        DataError: the path does not exist, is empty, has an unsupported extension, or
            ``split`` does not fit it.
    """
    if not path.exists():
        raise DataError(
            f"{path}: no such file or directory (looked at {path.resolve()}); check the path "
            f"in data.path."
        )
    if path.is_dir():
        return _open_datasets(path, split)
    fmt = _EXTENSIONS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"{path.name}: unsupported file type {path.suffix or '(no extension)'!r}; {_ACCEPTED}. "
            f"To convert a JSON array or other JSON file, run: python -c \"import datasets; "
            f"datasets.Dataset.from_json('{path.name}').to_json('{path.stem}.jsonl')\"; "
            f"for plain text, write one {{\"text\": ...}} object per line to a .jsonl file."
        )
    if split is not None:
        raise DataError(
            f"{path.name}: split={split!r} was given, but splits exist only in a directory "
            f"written by DatasetDict.save_to_disk; remove data.split for a .{fmt} file."
        )
    if path.stat().st_size == 0:
        raise DataError(
            f"{path.name}: the file is empty (0 bytes); check that it was written fully."
        )
    return {"jsonl": _open_jsonl, "csv": _open_csv, "parquet": _open_parquet}[fmt](path)


def _open_jsonl(path: Path) -> Source:
    rows = _jsonl_rows(path, path.name)
    return Source("jsonl", path.name, None, rows, "the file has no lines.")


def _jsonl_rows(path: Path, name: str) -> Iterator[RawRow]:
    # Binary mode, decoded line by line, so that one bad byte costs one line, not the file.
    with path.open("rb") as f:
        for line_no, data in enumerate(f, 1):
            if line_no == 1 and data.startswith(_UTF8_BOM):
                data = data[len(_UTF8_BOM) :]
            text = data.decode("utf-8", "replace").rstrip("\r\n")
            try:
                value = _parse_jsonl_line(data)
            except RowProblem as problem:
                yield RawRow(line_no, f"{name}:{line_no}", None, problem, text)
                continue
            yield RawRow(line_no, f"{name}:{line_no}", value, None, text)


def _parse_jsonl_line(data: bytes) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RowProblem(
            "invalid UTF-8",
            f"the line is not valid UTF-8 (byte 0x{data[exc.start]:02x} at byte {exc.start + 1}: "
            f"{exc.reason}); {_RESAVE_UTF8}.",
        ) from None
    if not text.strip():
        raise RowProblem(
            BLANK_LINE, "blank line; remove it, every line of a JSONL file must be one JSON object."
        )
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RowProblem(
            "broken JSON",
            f"broken JSON: {exc.msg} at column {exc.colno}; each line must be one complete "
            f"JSON object.",
        ) from None
    if not isinstance(value, dict):
        kinds = {list: "a list", str: "a string", bool: "a boolean", int: "a number"}
        kind = kinds.get(type(value), "a number" if isinstance(value, float) else "null")
        raise RowProblem(
            "JSON value not an object",
            f"the line holds {kind}, not a JSON object; each line must be one object such as "
            f'{{"text": "..."}}.',
        )
    return value


def _open_csv(path: Path) -> Source:
    # surrogateescape keeps bad bytes as lone surrogates, so one bad row can be rejected
    # on its own instead of failing the file.
    text = path.read_bytes().decode("utf-8-sig", errors="surrogateescape")
    if not text.strip():
        raise DataError(
            f"{path.name}: the file holds only whitespace; it needs a header row and data rows."
        )
    consumed: list[str] = []

    def lines() -> Iterator[str]:
        # newline="" keeps line ends as they are, which csv needs for quoted multi-line fields.
        for line in io.StringIO(text, newline=""):
            consumed.append(line)
            yield line

    # Long texts are normal training data; csv's default 128 KiB field limit is not.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    reader = csv.reader(lines())
    header = next(reader)
    if not any(h.strip() for h in header):
        raise DataError(
            f"{path.name}: line 1 is empty; the first line of a CSV file must be its header row."
        )
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise DataError(
            f"{path.name}: the header repeats column(s) {', '.join(map(repr, duplicates))}; "
            f"give every column a distinct name."
        )
    consumed.clear()
    rows = _csv_rows(reader, consumed, header, path.name)
    return Source("csv", path.name, header, rows, "the file has a header row but no data rows.")


def _csv_rows(reader: Any, consumed: list[str], header: list[str], name: str) -> Iterator[RawRow]:
    while True:
        # A quoted field can span lines, so a row starts one past where the last one ended.
        line_no = reader.line_num + 1
        cells: list[str] | None
        try:
            cells, error = next(reader), ""
        except StopIteration:
            return
        except csv.Error as exc:
            cells, error = None, str(exc)
        raw = "".join(consumed).rstrip("\r\n")
        consumed.clear()
        try:
            value = _check_csv_row(raw, cells, error, header)
        except RowProblem as problem:
            yield RawRow(line_no, f"{name}:{line_no}", None, problem, raw)
            continue
        yield RawRow(line_no, f"{name}:{line_no}", value, None, raw)


def _check_csv_row(
    raw: str, cells: list[str] | None, error: str, header: list[str]
) -> dict[str, str]:
    if cells is None:
        raise RowProblem("unreadable CSV row", f"the row cannot be parsed as CSV ({error}).")
    if not raw.strip():
        raise RowProblem(BLANK_LINE, "blank line; remove it from the CSV file.")
    if len(cells) != len(header):
        many = len(cells) > len(header)
        fix = (
            "put values that contain commas in double quotes"
            if many
            else "every row needs one value per column (an empty one is two commas in a row)"
        )
        raise RowProblem(
            f"too {'many' if many else 'few'} CSV fields",
            f"the row has {len(cells)} field{'s' if len(cells) != 1 else ''} but the header has "
            f"{len(header)} columns ({', '.join(map(repr, header))}); {fix}.",
        )
    if not _is_utf8(raw):
        bad = [h for h, cell in zip(header, cells) if not _is_utf8(cell)]
        raise RowProblem(
            "invalid UTF-8",
            f"field(s) {', '.join(map(repr, bad))} hold bytes that are not valid UTF-8; "
            f"{_RESAVE_UTF8}.",
        )
    return dict(zip(header, cells))


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _open_parquet(path: Path) -> Source:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"{path.name}: cannot be read as Parquet ({exc}); check that the file is complete."
        ) from exc
    rows = _arrow_rows(parquet.iter_batches(batch_size=_BATCH_ROWS), path.name)
    return Source("parquet", path.name, parquet.schema_arrow.names, rows, "the file has no rows.")


def _open_datasets(path: Path, split: str | None) -> Source:
    import datasets

    dir_name = path.name or path.resolve().name
    try:
        loaded = datasets.load_from_disk(str(path))
    except FileNotFoundError as exc:
        raise DataError(
            f"{path}: is a directory but not one written by datasets' save_to_disk ({exc}); "
            f"{_ACCEPTED}."
        ) from exc
    if isinstance(loaded, datasets.DatasetDict):
        split = "train" if split is None else split
        if split not in loaded:
            raise DataError(
                f"{dir_name}: this DatasetDict has no split {split!r}; choose one of "
                f"{', '.join(map(repr, loaded))} with data.split."
            )
        dataset, name = loaded[split], f"{dir_name}/{split}"
    elif split is not None:
        raise DataError(
            f"{dir_name}: split={split!r} was given, but this directory holds a single Dataset "
            f"with no splits; remove data.split."
        )
    else:
        dataset, name = loaded, dir_name
    rows = _arrow_rows(dataset.with_format("arrow").iter(batch_size=_BATCH_ROWS), name)
    return Source("datasets", name, list(dataset.column_names), rows, "it has no rows.", split)


def _arrow_rows(tables: Iterable[Any], name: str) -> Iterator[RawRow]:
    index = 0
    for table in tables:
        for value in table.to_pylist():
            yield RawRow(index, f"{name}:{index}", value)
            index += 1
