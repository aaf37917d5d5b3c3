"""Malformed rows are rejected one by one with a clear reason; no row is lost."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tuneproof.data import LoadResult, Rejected, load_records
from tuneproof.errors import DataError


def assert_accounted(result: LoadResult, data_rows: int) -> None:
    """No row lost: every data row is a record or a reject."""
    assert result.total_rows == data_rows
    assert len(result.records) + len(result.rejected) == data_rows


GOOD_PC = '{"prompt": "p", "completion": "c"}\n'


def only_reject(result) -> Rejected:
    assert len(result.rejected) == 1, result.rejected
    return result.rejected[0]


# (case id, file content, data rows, expected rejected line, words the reason must contain)
JSONL_CASES = [
    ("broken-json", GOOD_PC + '{"prompt": "p", "completion": \n' + GOOD_PC, 3, 2,
     ["broken JSON", "column"]),
    ("non-object", GOOD_PC + "[1, 2]\n" + GOOD_PC, 3, 2, ["list", "not a JSON object"]),
    ("number", GOOD_PC + "42\n", 2, 2, ["number", "not a JSON object"]),
    ("missing-field", GOOD_PC + '{"prompt": "p", "id": 3}\n', 2, 2,
     ["missing field 'completion'", "'prompt', 'id'"]),
    ("null-field", GOOD_PC + '{"prompt": null, "completion": "c"}\n', 2, 2,
     ["'prompt'", "null"]),
    ("wrong-type", GOOD_PC + GOOD_PC + '{"prompt": "p", "completion": 5}\n', 3, 3,
     ["'completion'", "should be a string", "an integer"]),
    ("blank-middle", GOOD_PC + "\n" + GOOD_PC, 3, 2, ["blank line"]),
    ("whitespace-middle", GOOD_PC + "   \t\n" + GOOD_PC, 3, 2, ["blank line"]),
]


@pytest.mark.parametrize(("content", "rows", "line", "words"),
                         [c[1:] for c in JSONL_CASES], ids=[c[0] for c in JSONL_CASES])
def test_jsonl_row_rejected(write, content: str, rows: int, line: int, words: list[str]) -> None:
    result = load_records(write("train.jsonl", content))
    assert_accounted(result, rows)
    bad = only_reject(result)
    assert (bad.id, bad.line) == (f"train.jsonl:{line}", line)
    for word in words:
        assert word in bad.reason


def test_final_newline_is_not_a_line_but_trailing_blank_is(write) -> None:
    assert_accounted(load_records(write("a.jsonl", GOOD_PC)), 1)
    result = load_records(write("b.jsonl", GOOD_PC + "\n"))
    assert_accounted(result, 2)
    assert only_reject(result).id == "b.jsonl:2"


def test_jsonl_invalid_utf8_rejects_only_that_line(write) -> None:
    content = GOOD_PC.encode() + b'{"prompt": "caf\xe9", "completion": "c"}\n' + GOOD_PC.encode()
    result = load_records(write("train.jsonl", content))
    assert_accounted(result, 3)
    bad = only_reject(result)
    assert bad.line == 2 and "not valid UTF-8" in bad.reason and "0xe9" in bad.reason
    assert "caf\ufffd" in bad.raw  # the raw text survives, with the bad byte replaced


def test_csv_invalid_utf8(write) -> None:
    content = b"text,label\nfine,1\ncaf\xe9 au lait,0\nalso fine,1\n"
    result = load_records(write("d.csv", content))
    assert_accounted(result, 3)
    bad = only_reject(result)
    assert (bad.id, bad.line) == ("d.csv:3", 3)
    assert "'text'" in bad.reason and "not valid UTF-8" in bad.reason
    assert [r.id for r in result.records] == ["d.csv:2", "d.csv:4"]


def test_csv_too_many_fields(write) -> None:
    result = load_records(write("d.csv", "prompt,completion\na,b\nc,d,e\nf,g\n"))
    assert_accounted(result, 3)
    bad = only_reject(result)
    assert bad.line == 3
    assert "3 fields" in bad.reason and "header has 2 columns" in bad.reason
    assert "quotes" in bad.reason


def test_csv_too_few_fields(write) -> None:
    result = load_records(write("d.csv", "prompt,completion\na,b\nlonely\n"))
    assert_accounted(result, 2)
    bad = only_reject(result)
    assert bad.id == "d.csv:3" and "1 field but the header has 2 columns" in bad.reason


def test_csv_blank_line_after_multiline_row(write) -> None:
    result = load_records(write("d.csv", 'text\n"two\nlines"\n\nlast\n'))
    assert_accounted(result, 3)
    assert only_reject(result).line == 4 and "blank line" in result.rejected[0].reason
    assert [r.id for r in result.records] == ["d.csv:2", "d.csv:5"]


CHAT_GOOD = '{"messages": [{"role": "user", "content": "hi"}]}\n'


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ('{"messages": [{"role": "user", "content": "hi"}, {"role": "bot", "content": "x"}]}',
         ["message 2", "'bot'", "system, user, assistant, tool"]),
        ('{"messages": []}', ["empty list", "at least one message"]),
        ('{"messages": [{"role": "user", "content": null}]}', ["message 1", "'content'"]),
        ('{"messages": ["hello"]}', ["message 1", "'role' and 'content'", "a string"]),
        ('{"messages": "hello"}', ["'messages'", "should be a list"]),
    ],
    ids=["bad-role", "empty-messages", "null-content", "message-not-object", "not-a-list"],
)
def test_chat_rejects(write, row: str, words: list[str]) -> None:
    result = load_records(write("chat.jsonl", CHAT_GOOD + row + "\n"))
    assert_accounted(result, 2)
    bad = only_reject(result)
    assert bad.id == "chat.jsonl:2"
    for word in words:
        assert word in bad.reason


@pytest.mark.parametrize(
    ("label", "words"),
    [("[1, 2]", ["'label'", "a list"]), ("1.5", ["'label'", "a number"]), ("NaN", ["null"])],
    ids=["list", "float", "nan"],
)
def test_label_wrong_type(write, label: str, words: list[str]) -> None:
    content = '{"text": "ok", "label": 1}\n{"text": "bad", "label": ' + label + "}\n"
    result = load_records(write("d.jsonl", content))
    assert_accounted(result, 2)
    bad = only_reject(result)
    assert bad.line == 2
    assert "string, an integer or a boolean" in bad.reason or "null" in bad.reason
    for word in words:
        assert word in bad.reason


def test_parquet_null(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["a", None, "c"], "label": [1, 2, 3]}), path)
    result = load_records(path)
    assert_accounted(result, 3)
    bad = only_reject(result)
    assert (bad.id, bad.line) == ("d.parquet:1", 1)
    assert "'text' is null" in bad.reason
    assert '"label": 2' in bad.raw


def test_parquet_float_labels(tmp_path: Path) -> None:
    # pandas writes an int column with gaps as floats: 1.0 is kept as 1, NaN and 2.5 are not.
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["a", "b", "c"], "label": [1.0, math.nan, 2.5]}), path)
    result = load_records(path)
    assert_accounted(result, 3)
    assert result.records[0].label == 1 and type(result.records[0].label) is int
    assert [r.id for r in result.rejected] == ["d.parquet:1", "d.parquet:2"]
    assert "'label' is null" in result.rejected[0].reason
    assert "a number (2.5)" in result.rejected[1].reason


def test_datasets_wrong_type(tmp_path: Path) -> None:
    import datasets

    datasets.Dataset.from_dict({"prompt": ["a", "b"], "completion": [["x"], ["y"]]}).save_to_disk(
        str(tmp_path / "ds")
    )
    with pytest.raises(DataError) as err:
        load_records(tmp_path / "ds")
    assert "all 2 rows were rejected" in str(err.value)
    assert "should be a string but is a list" in str(err.value)


def test_raw_is_truncated(write) -> None:
    long_line = '{"prompt": "' + "x" * 2000 + '"}'
    result = load_records(write("d.jsonl", GOOD_PC + long_line + "\n"))
    assert len(only_reject(result).raw) <= 500
