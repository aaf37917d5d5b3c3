"""Property-based fuzzing of the JSONL, CSV and Parquet loaders (hypothesis).

For any input: either a DataError for the whole file (empty, no schema, nothing readable),
or a result where records + rejected = the file's rows, each row appears exactly once, and
every rejected row keeps its line and a reason. Never any other exception.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from tuneproof.data import load_records
from tuneproof.errors import DataError

# Examples per property: enough to reach the odd shapes (BOMs, bad bytes, quotes across
# lines, NaN, nulls, nested values) in the fast suite, in a few seconds each.
EXAMPLES = 300
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

COLUMNS = ["text", "label", "prompt", "completion", "instruction", "input", "output", "messages", "id", "x"]
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(
    ["role", "content", "x"]) | st.text(max_size=5), inner, max_size=3), max_leaves=8)  # fmt: skip
rows = st.dictionaries(st.sampled_from(COLUMNS) | st.text(max_size=8), values, max_size=5)
# The fields of one schema, with values of the right type most of the time: files whose schema is
# detected, so that most examples reach the row-by-row checks instead of a whole-file error.
SCHEMAS = [("text",), ("text", "label"), ("prompt", "completion"), ("instruction", "output"), ("messages",)]
good = {"text": st.text(max_size=12), "label": st.sampled_from(["a", "b"]) | st.integers(0, 2),
        "prompt": st.text(max_size=12), "completion": st.text(max_size=12), "instruction": st.text(max_size=12),
        "output": st.text(max_size=12), "messages": st.lists(st.fixed_dictionaries(
            {"role": st.sampled_from(["user", "assistant", "robot"]), "content": st.text(max_size=8)}), max_size=2)}  # fmt: skip


def _schema_rows(fields: tuple[str, ...]) -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({f: st.one_of(good[f], good[f], good[f], values) for f in fields},
                                 optional={"id": values, "extra": values})  # fmt: skip


def _jsonl_line(fields: tuple[str, ...]) -> st.SearchStrategy[bytes]:
    dump = lambda r: json.dumps(r, ensure_ascii=False).encode("utf-8", "surrogatepass")  # noqa: E731
    objects = _schema_rows(fields).map(dump)
    return st.one_of(
        objects, objects, objects,  # rows of the file's schema, most of them valid
        rows.map(dump),  # an object with any keys and values
        st.lists(scalars, max_size=3).map(lambda v: json.dumps(v).encode()),  # a JSON value, not an object
        st.binary(max_size=40).filter(lambda b: b"\n" not in b),  # arbitrary bytes
        st.just(b""),  # blank
        st.just(b'{"text": "unterminated'),
        st.just(b"\xef\xbb\xbf" + b'{"text": "bom"}'),
    )


jsonl_files = st.sampled_from(SCHEMAS).flatmap(lambda f: st.lists(_jsonl_line(f), min_size=1, max_size=12)).flatmap(
    lambda lines: st.sampled_from([b"\n", b"\r\n"]).map(lambda nl: nl.join(lines)) | st.just(b"\n".join(lines) + b"\n"))


def _check(result, path: Path, n_rows: int | None, first_line: int, rejects: Path) -> None:
    assert len(result.records) + len(result.rejected) == result.total_rows
    if n_rows is not None:
        assert result.total_rows == n_rows
    ids = [r.id for r in result.records] + [r.id for r in result.rejected]
    assert len(set(ids)) == len(ids)  # no row counted twice
    for r in result.rejected:
        assert r.line >= first_line and r.reason.strip() and r.id == f"{path.name}:{r.line}"
    # split on "\n" only: str.splitlines() would also cut at U+0085 or U+2028 inside a raw row
    written = [json.loads(line) for line in rejects.read_text(encoding="utf-8").split("\n") if line]
    assert [(w["id"], w["line"], w["reason"]) for w in written] == [(r.id, r.line, r.reason) for r in result.rejected]


def _load(path: Path, rejects: Path):
    try:
        result = load_records(path, rejects_path=rejects)
    except DataError as exc:
        assert str(exc).strip() and path.name in str(exc)  # a whole-file problem, named
        event("a whole-file DataError")
        return None
    event("loaded, with rejected rows" if result.rejected else "loaded, every row kept")
    return result


def _physical_lines(data: bytes) -> int:
    return data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)


@FUZZ
@given(data=jsonl_files)
@example(data=b"")  # empty and blank files: a whole-file error, named
@example(data=b"\n\r\n\n")
def test_jsonl_never_loses_a_row(data):
    with tempfile.TemporaryDirectory() as tmp:
        path, rejects = Path(tmp) / "f.jsonl", Path(tmp) / "rejects.jsonl"
        path.write_bytes(data)
        result = _load(path, rejects)
        if result is not None:
            _check(result, path, _physical_lines(data), 1, rejects)
            lines = sorted(int(i.rsplit(":", 1)[1]) for i in [r.id for r in result.records] + [r.id for r in result.rejected])
            assert lines == list(range(1, _physical_lines(data) + 1))  # every line, once, in place


cells = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=15)


@st.composite
def csv_files(draw) -> tuple[bytes, int | None]:
    """A CSV file, and its number of data rows when it is well formed (None when corrupted)."""
    extra = draw(st.lists(st.sampled_from(COLUMNS[:4]) | st.text(min_size=1, max_size=6), min_size=0, max_size=3, unique=True))
    schema = list(draw(st.sampled_from(SCHEMAS[:4]))) if draw(st.integers(0, 4)) else []  # detectable, mostly
    header = list(dict.fromkeys(schema + extra)) or ["x"]
    body = draw(st.lists(st.lists(cells, min_size=len(header), max_size=len(header)), max_size=10))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows(body)
    data = buf.getvalue().encode("utf-8")
    if not draw(st.booleans()):
        return data, len(body)
    # corrupt: splice in bytes, stray quotes, ragged rows or blank lines
    junk = draw(st.lists(st.binary(max_size=12) | st.sampled_from([b'"', b",,,", b"\n", b"\r\n", b"\xff\xfe"]), min_size=1, max_size=4))
    for j in junk:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + j + data[at:]
    return data, None


@FUZZ
@given(f=csv_files())
def test_csv_never_loses_a_row(f):
    data, n_rows = f
    with tempfile.TemporaryDirectory() as tmp:
        path, rejects = Path(tmp) / "f.csv", Path(tmp) / "rejects.jsonl"
        path.write_bytes(data)
        result = _load(path, rejects)
        if result is not None:
            _check(result, path, n_rows, 2, rejects)  # line 1 is the header


@st.composite
def tables(draw):
    """Columns of one Arrow type each (Parquet needs that), values may be null or NaN."""
    import pyarrow as pa

    required = list(draw(st.sampled_from(SCHEMAS[:4])))  # a schema's columns, most of the time
    names = draw(st.lists(st.sampled_from(COLUMNS), min_size=0 if required else 1, max_size=3, unique=True))
    names = list(dict.fromkeys((required if draw(st.integers(0, 4)) else []) + names)) or ["x"]
    n = draw(st.integers(0, 8))
    kinds = {"str": (st.text(max_size=10), pa.string()), "int": (st.integers(-(2**63), 2**63 - 1), pa.int64()),
             "float": (st.floats(allow_nan=True), pa.float64()), "bool": (st.booleans(), pa.bool_()),
             "list": (st.lists(st.text(max_size=5), max_size=3), pa.list_(pa.string())),
             "msgs": (st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "x"]),
                                                       "content": st.text(max_size=5)}), max_size=2),
                      pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])))}  # fmt: skip
    cols = {}
    for name in names:
        kind = "str" if name in ("text", "prompt", "completion", "instruction", "output") and draw(st.integers(0, 3)) else None
        strat, typ = kinds[kind or draw(st.sampled_from(sorted(kinds)))]
        cols[name] = pa.array(draw(st.lists(st.none() | strat, min_size=n, max_size=n)), type=typ)
    return pa.table(cols)


@FUZZ
@given(table=tables())
def test_parquet_never_loses_a_row(table):
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        path, rejects = Path(tmp) / "f.parquet", Path(tmp) / "rejects.jsonl"
        pq.write_table(table, path)
        result = _load(path, rejects)
        if result is not None:
            _check(result, path, table.num_rows, 0, rejects)
            for rec in result.records:  # what was kept is valid: no null or NaN in a required field
                assert all(v is not None and not (isinstance(v, float) and math.isnan(v)) for v in rec.fields.values())


@FUZZ
@given(data=st.binary(max_size=200))
def test_parquet_loader_names_a_broken_file(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.parquet"
        path.write_bytes(data)
        assert _load(path, Path(tmp) / "rejects.jsonl") is None  # random bytes are never valid Parquet


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q", "--hypothesis-show-statistics"])
