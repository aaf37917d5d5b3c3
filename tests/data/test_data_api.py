"""The public surface of tuneproof.data, rejects files, summaries and detection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tuneproof.data
from tuneproof.data import LoadResult, Schema, detect_schema, load_records
from tuneproof.errors import DataError


def test_public_surface_is_pinned() -> None:
    assert sorted(tuneproof.data.__all__) == [
        "LoadResult", "Record", "Rejected", "Schema", "detect_schema", "load_records",
    ]


def test_write_rejects_one_json_line_per_rejected_row(write, tmp_path: Path) -> None:
    path = write("train.jsonl", '{"text": "ok"}\n\n{"text": null}\n[1]\n{"text": "ok"}\n')
    result = load_records(path)
    out = result.write_rejects(tmp_path / "sub" / "rejects.jsonl")
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["line"]) for r in rows] == [
        ("train.jsonl:2", 2), ("train.jsonl:3", 3), ("train.jsonl:4", 4)
    ]
    assert all(set(r) == {"id", "line", "reason", "raw"} for r in rows)
    assert "blank line" in rows[0]["reason"] and rows[2]["raw"] == "[1]"


def test_rejects_path_is_written_by_load(write, tmp_path: Path) -> None:
    rejects = tmp_path / "rejects.jsonl"
    load_records(write("d.csv", b"text\nok\n"), rejects_path=rejects)
    assert rejects.read_text() == ""  # written even when nothing was rejected


def test_summary(write) -> None:
    path = write(
        "train.jsonl",
        '{"prompt": "p", "completion": "c"}\n{"prompt": "p"}\n{bad\n{"prompt": "p"}\n',
    )
    assert load_records(path).summary() == (
        "train.jsonl: 1 records (prompt_completion), 3 rejected: "
        "2 missing field 'completion', 1 broken JSON"
    )


def test_bom_accepted(write) -> None:
    jsonl = load_records(write("b.jsonl", b'\xef\xbb\xbf{"text": "a"}\n'))
    assert jsonl.records[0].fields == {"text": "a"} and not jsonl.rejected
    csv = load_records(write("b.csv", b"\xef\xbb\xbftext,label\nx,1\n"))
    assert csv.schema is Schema.TEXT_LABEL and csv.records[0].fields == {"text": "x", "label": "1"}


def test_crlf_line_ends(write) -> None:
    result = load_records(write("w.jsonl", b'{"text": "a"}\r\n{"text": "b"}\r\n'))
    assert [r.text for r in result.records] == ["a", "b"]
    result = load_records(write("w.csv", b'text\r\n"x\r\ny"\r\nz\r\n'))
    assert [r.id for r in result.records] == ["w.csv:2", "w.csv:4"]


def test_keys_seen_beyond_the_first_row_count_for_detection(write) -> None:
    # Row 1 lacks `label`; the union of keys over the first rows still finds text_label.
    result = load_records(write("d.jsonl", '{"text": "a"}\n{"text": "b", "label": 1}\n'))
    assert result.schema is Schema.TEXT_LABEL
    assert "missing field 'label'" in result.rejected[0].reason


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (["messages", "instruction", "output", "text"], Schema.CHAT),
        (["instruction", "output", "prompt", "completion"], Schema.ALPACA),
        (["prompt", "completion", "text", "label"], Schema.PROMPT_COMPLETION),
        (["text", "label", "id"], Schema.TEXT_LABEL),
        (["text", "meta"], Schema.TEXT),
    ],
)
def test_detection_priority(columns: list[str], expected: Schema) -> None:
    assert detect_schema(columns)[0] is expected


def test_detect_schema_with_mapping() -> None:
    assert detect_schema(["q", "a"], {"prompt": "q", "completion": "a"}) == (
        Schema.PROMPT_COMPLETION, {"prompt": "q", "completion": "a"}
    )
    with pytest.raises(DataError, match="columns seen: 'q', 'a'"):
        detect_schema(["q", "a"], {"prompt": "question"})


def test_record_property_for_missing_field_explains(fixtures: Path) -> None:
    record = load_records(fixtures / "prompt_completion.jsonl").records[0]
    with pytest.raises(AttributeError, match="is a prompt_completion record and has no 'text' field"):
        _ = record.text


def test_load_result_enforces_invariant() -> None:
    with pytest.raises(ValueError, match="every row must be one or the other"):
        LoadResult(Path("x.jsonl"), "jsonl", Schema.TEXT, {}, [], [], total_rows=1)


def test_extra_columns_are_kept_beside_the_canonical_fields(tmp_path):
    import json

    from tuneproof.data import load_records

    path = tmp_path / "qa.jsonl"
    rows = [
        {"question": "Capital of France?", "answer": "Paris", "answers": ["Paris", "paris, france"], "origin": "nq"},
        {"question": "Capital of Italy?", "answer": "Rome", "answers": ["Rome"], "origin": "nq"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = load_records(path, fields={"prompt": "question", "completion": "answer"})
    first = result.records[0]
    assert first.fields == {"prompt": "Capital of France?", "completion": "Paris"}
    # Mapped source columns are not repeated in extra; everything else is kept unchanged.
    assert first.extra == {"answers": ["Paris", "paris, france"], "origin": "nq"}
