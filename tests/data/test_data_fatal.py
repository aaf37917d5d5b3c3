"""Sources that cannot be used at all raise one DataError that names the file and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneproof.data import load_records
from tuneproof.errors import DataError


def error_of(*args, **kwargs) -> str:
    with pytest.raises(DataError) as err:
        load_records(*args, **kwargs)
    return str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    message = error_of(tmp_path / "nope.jsonl")
    assert "nope.jsonl" in message and "no such file" in message and "check the path" in message


@pytest.mark.parametrize(
    ("name", "content"),
    [("e.jsonl", b""), ("w.jsonl", b"\n  \n\t\n"), ("e.csv", b""), ("w.csv", b" \n\n")],
)
def test_empty_file(write, name: str, content: bytes) -> None:
    message = error_of(write(name, content))
    assert name in message
    assert "empty" in message or "whitespace" in message or "blank lines" in message


def test_header_only_csv(write) -> None:
    message = error_of(write("h.csv", "prompt,completion\n"))
    assert "h.csv" in message and "header row but no data rows" in message


def test_unknown_schema_lists_fields_seen_and_formats(write) -> None:
    message = error_of(write("q.jsonl", '{"question": "q", "answer": "a"}\n'))
    assert "q.jsonl" in message
    assert "'question', 'answer'" in message
    for fmt in ("chat: messages", "alpaca: instruction, output", "prompt_completion: prompt, completion",
                "text_label: text, label", "text: text"):
        assert fmt in message
    assert "data.fields" in message and "--set data.fields.prompt=question" in message


@pytest.mark.parametrize("name", ["d.json", "d.txt", "d"])
def test_unsupported_extension(write, name: str) -> None:
    message = error_of(write(name, '[{"text": "a"}]'))
    assert name in message and "unsupported file type" in message
    assert ".jsonl" in message and ".csv" in message and ".parquet" in message
    assert "save_to_disk" in message and "to_json" in message  # how to convert


def test_split_on_a_plain_file_errors(fixtures: Path) -> None:
    assert "split" in error_of(fixtures / "text.jsonl", split="train")


def test_directory_not_saved_by_datasets(tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    assert "save_to_disk" in error_of(tmp_path / "junk")


def test_all_rows_rejected_writes_rejects_then_raises(write, tmp_path: Path) -> None:
    path = write("bad.jsonl", '{"text": 1}\nnot json\n{"text": 2}\n')
    rejects = tmp_path / "out" / "rejects.jsonl"
    message = error_of(path, rejects_path=rejects)
    assert "bad.jsonl" in message and "all 3 rows were rejected" in message
    assert "2 wrong type for 'text', 1 broken JSON" in message
    assert str(rejects) in message
    assert [json.loads(line)["id"] for line in rejects.read_text().splitlines()] == [
        "bad.jsonl:1", "bad.jsonl:2", "bad.jsonl:3"
    ]


def test_all_rows_broken_json(write) -> None:
    message = error_of(write("b.jsonl", "{\n{\n"))
    assert "all 2 rows were rejected (2 broken JSON)" in message


def test_unknown_field_name_in_mapping(fixtures: Path) -> None:
    message = error_of(fixtures / "qa.csv", fields={"question": "question"})
    assert "unknown field name" in message and "prompt" in message


def test_mapping_incomplete_for_its_schema(fixtures: Path) -> None:
    message = error_of(fixtures / "qa.csv", fields={"prompt": "question"})
    assert "needs 'completion'" in message and "--set data.fields.completion=<column>" in message


def test_unknown_forced_schema(fixtures: Path) -> None:
    assert "use one of: text, prompt_completion" in error_of(fixtures / "text.jsonl", schema="tweets")


def test_read_error_is_a_clear_data_error(tmp_path, monkeypatch):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "a"}\n')
    real_open = Path.open

    def failing_open(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied")
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", failing_open)
    with pytest.raises(DataError, match="cannot be read \\(Permission denied\\)"):
        load_records(path)
