"""Each input format and each schema: canonical fields and ids, exactly."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tuneproof.data import Schema, load_records
from tuneproof.errors import DataError


def test_text_jsonl(fixtures: Path) -> None:
    result = load_records(fixtures / "text.jsonl")
    assert (result.format, result.schema, result.field_map) == ("jsonl", Schema.TEXT, {"text": "text"})
    assert [r.id for r in result.records] == ["text.jsonl:1", "text.jsonl:2", "text.jsonl:3"]
    # Extra columns ("source") stay out of the canonical fields.
    assert result.records[1].fields == {"text": "Paris is the capital of France."}
    assert result.records[0].text == "The cat sat on the mat."
    assert result.rejected == [] and result.total_rows == 3


def test_prompt_completion_jsonl(fixtures: Path) -> None:
    result = load_records(fixtures / "prompt_completion.jsonl")
    assert result.schema is Schema.PROMPT_COMPLETION
    assert [(r.id, r.fields) for r in result.records] == [
        ("prompt_completion.jsonl:1", {"prompt": "2 + 2 =", "completion": " 4"}),
        ("prompt_completion.jsonl:2", {"prompt": "Capital of Italy?", "completion": " Rome"}),
    ]


def test_alpaca_jsonl_input_missing_or_null_becomes_empty(fixtures: Path) -> None:
    result = load_records(fixtures / "alpaca.jsonl")
    assert result.schema is Schema.ALPACA
    assert [r.fields for r in result.records] == [
        {"instruction": "Translate to French.", "output": "Bonjour", "input": "Good morning"},
        {"instruction": "Name a primary colour.", "output": "Red", "input": ""},
        {"instruction": "Summarise.", "output": "Short.", "input": ""},
    ]
    assert result.field_map == {"instruction": "instruction", "output": "output", "input": "input"}


def test_chat_jsonl_keeps_only_role_and_content(fixtures: Path) -> None:
    result = load_records(fixtures / "chat.jsonl")
    assert result.schema is Schema.CHAT  # chat wins over the `text` column on line 2
    assert result.records[0].id == "chat.jsonl:1"
    assert result.records[0].fields == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
        ]
    }
    assert result.records[1].fields["messages"][1] == {"role": "assistant", "content": "4"}


def test_text_label_jsonl_accepts_str_int_bool(fixtures: Path) -> None:
    result = load_records(fixtures / "text_label.jsonl")
    assert result.schema is Schema.TEXT_LABEL
    assert [(r.text, r.label) for r in result.records] == [
        ("great film", "positive"),
        ("boring", 0),
        ("spam?", True),
    ]


def test_ndjson_extension(write) -> None:
    result = load_records(write("d.ndjson", '{"text": "a"}\n'))
    assert result.format == "jsonl" and result.records[0].id == "d.ndjson:1"


def test_text_label_csv(fixtures: Path) -> None:
    result = load_records(fixtures / "text_label.csv")
    assert (result.format, result.schema) == ("csv", Schema.TEXT_LABEL)
    assert [(r.id, r.fields) for r in result.records] == [
        ("text_label.csv:2", {"text": "loved it", "label": "pos"}),
        ("text_label.csv:3", {"text": "hated it", "label": "neg"}),
    ]


def test_csv_multiline_quoted_field_gives_physical_start_lines(fixtures: Path) -> None:
    result = load_records(fixtures / "multiline.csv")
    assert [r.id for r in result.records] == ["multiline.csv:2", "multiline.csv:5", "multiline.csv:6"]
    assert result.records[0].fields["prompt"] == "First line\nsecond line\nthird line"
    assert result.records[2].fields == {"prompt": "a, b", "completion": "c"}


def test_field_mapping_overrides_detection(fixtures: Path) -> None:
    result = load_records(fixtures / "qa.csv", fields={"prompt": "question", "completion": "answer"})
    assert result.schema is Schema.PROMPT_COMPLETION
    assert result.field_map == {"prompt": "question", "completion": "answer"}
    assert [(r.id, r.fields) for r in result.records] == [
        ("qa.csv:2", {"prompt": "What is 2+2?", "completion": "4"}),
        ("qa.csv:3", {"prompt": "Name a colour, any colour", "completion": "Blue"}),
    ]


def test_mapping_decides_schema_over_priority(write) -> None:
    # prompt/completion would win detection; mapping `text` means the user wants TEXT.
    path = write("d.jsonl", '{"prompt": "p", "completion": "c", "body": "b"}\n')
    result = load_records(path, fields={"text": "body"})
    assert result.schema is Schema.TEXT
    assert result.records[0].fields == {"text": "b"}


def test_forced_schema(fixtures: Path) -> None:
    result = load_records(fixtures / "text_label.jsonl", schema="text")
    assert result.schema is Schema.TEXT
    assert result.records[1].fields == {"text": "boring"}


def test_mapping_to_missing_column_errors(fixtures: Path) -> None:
    with pytest.raises(DataError) as err:
        load_records(fixtures / "qa.csv", fields={"prompt": "query", "completion": "answer"})
    message = str(err.value)
    assert "qa.csv" in message and "'query'" in message
    assert "'question', 'answer', 'source'" in message  # the columns it saw


def test_parquet(tmp_path: Path) -> None:
    path = tmp_path / "train.parquet"
    pq.write_table(pa.table({"prompt": ["a", "b"], "completion": ["x", "y"], "n": [1, 2]}), path)
    result = load_records(path)
    assert (result.format, result.schema) == ("parquet", Schema.PROMPT_COMPLETION)
    assert [(r.id, r.fields) for r in result.records] == [
        ("train.parquet:0", {"prompt": "a", "completion": "x"}),
        ("train.parquet:1", {"prompt": "b", "completion": "y"}),
    ]


def test_parquet_chat_list_of_structs(tmp_path: Path) -> None:
    path = tmp_path / "chat.parquet"
    messages = [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]]
    pq.write_table(pa.table({"messages": messages}), path)
    result = load_records(path)
    assert result.schema is Schema.CHAT
    assert result.records[0].fields["messages"] == messages[0]


def test_datasets_dir(tmp_path: Path) -> None:
    import datasets

    datasets.Dataset.from_dict(
        {"instruction": ["do it", "again"], "output": ["done", "redone"]}
    ).save_to_disk(str(tmp_path / "ds"))
    result = load_records(tmp_path / "ds")
    assert (result.format, result.schema) == ("datasets", Schema.ALPACA)
    assert [(r.id, r.fields) for r in result.records] == [
        ("ds:0", {"instruction": "do it", "output": "done", "input": ""}),
        ("ds:1", {"instruction": "again", "output": "redone", "input": ""}),
    ]


def test_datasetdict_split_selection(tmp_path: Path) -> None:
    import datasets

    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": ["t0", "t1"], "label": [0, 1]}),
            "test": datasets.Dataset.from_dict({"text": ["e0"], "label": [1]}),
        }
    ).save_to_disk(str(tmp_path / "dd"))

    default = load_records(tmp_path / "dd")
    assert [(r.id, r.fields) for r in default.records] == [
        ("dd/train:0", {"text": "t0", "label": 0}),
        ("dd/train:1", {"text": "t1", "label": 1}),
    ]
    test = load_records(tmp_path / "dd", split="test")
    assert [r.id for r in test.records] == ["dd/test:0"]
    assert test.split == "test" and test.summary().startswith("dd/test: 1 records (text_label)")

    with pytest.raises(DataError, match="'train', 'test'"):
        load_records(tmp_path / "dd", split="validation")


def test_datasetdict_without_train_needs_split(tmp_path: Path) -> None:
    import datasets

    datasets.DatasetDict({"eval": datasets.Dataset.from_dict({"text": ["x"]})}).save_to_disk(
        str(tmp_path / "dd")
    )
    with pytest.raises(DataError, match=r"no split 'train'.*'eval'.*data\.split"):
        load_records(tmp_path / "dd")
