"""Bad input gives a clear message that names the problem and the fix, never a traceback."""

from __future__ import annotations

import json

import pytest
from eval_helpers import pattern_rows, sentiment_rows, train_sft, write_jsonl

from tuneproof.errors import ConfigError, DataError, ModelLoadError
from tuneproof.evaluate import evaluate


def test_classification_data_for_sft(tiny_llama_dir, tmp_path):
    data = write_jsonl(tmp_path / "labels.jsonl", sentiment_rows(4))
    with pytest.raises(DataError, match=r"text_label records.*--task classification"):
        evaluate(tiny_llama_dir, tiny_llama_dir, data, tmp_path / "out")


def test_sft_data_for_classification(tiny_bert_dir, tmp_path):
    data = write_jsonl(tmp_path / "qa.jsonl", pattern_rows(["a", "b"]))
    with pytest.raises(DataError, match=r"prompt_completion records.*text and label"):
        evaluate(tiny_bert_dir, tiny_bert_dir, data, tmp_path / "out", task="classification", train=data)


def test_empty_test_set(tiny_llama_dir, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match="empty.jsonl"):
        evaluate(tiny_llama_dir, tiny_llama_dir, empty, tmp_path / "out")


def test_adapter_that_does_not_fit_the_base(tiny_llama_dir, tmp_path):
    from tuneproof.testing import tiny_llama

    adapter = train_sft(tiny_llama_dir, pattern_rows(["a", "b"]), tmp_path / "adapter", steps=1, lora=True)
    other_base = tiny_llama(tmp_path / "narrow", hidden_size=32)  # other shapes
    data = write_jsonl(tmp_path / "test.jsonl", pattern_rows(["c"]))
    with pytest.raises(ModelLoadError, match=r"does not fit the base model.*trained on"):
        evaluate(other_base, adapter, data, tmp_path / "out")


def test_classification_without_a_training_split(tiny_bert_dir, tmp_path):
    data = write_jsonl(tmp_path / "test.jsonl", sentiment_rows(4))
    with pytest.raises(DataError, match="--train"):
        evaluate(tiny_bert_dir, tiny_bert_dir, data, tmp_path / "out", task="classification")


def test_unknown_label_names_the_record(tiny_bert_dir, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", sentiment_rows(6))
    test = write_jsonl(tmp_path / "test.jsonl", [{"text": "so so", "label": "meh"}])
    with pytest.raises(DataError, match=r"test.jsonl:1: label 'meh' is not one of"):
        evaluate(tiny_bert_dir, tiny_bert_dir, test, tmp_path / "out", task="classification", train=train)


def test_metric_of_the_other_task(tiny_llama_dir, tmp_path):
    data = write_jsonl(tmp_path / "test.jsonl", pattern_rows(["c"]))
    with pytest.raises(ConfigError, match="not a metric for task sft"):
        evaluate(tiny_llama_dir, tiny_llama_dir, data, tmp_path / "out", metric="accuracy")


def test_chat_record_without_an_answer(tiny_llama_dir, tmp_path):
    data = tmp_path / "chat.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(DataError, match=r"chat.jsonl:1: a chat record must end with an assistant turn"):
        evaluate(tiny_llama_dir, tiny_llama_dir, data, tmp_path / "out")


def test_missing_forgetting_file(tiny_llama_dir, tmp_path):
    data = write_jsonl(tmp_path / "test.jsonl", pattern_rows(["c"]))
    with pytest.raises(DataError, match="no such file.*xsum"):
        evaluate(tiny_llama_dir, tiny_llama_dir, data, tmp_path / "out", forgetting_text=str(tmp_path / "nope.txt"))


def test_bad_limit(tiny_llama_dir, tmp_path):
    data = write_jsonl(tmp_path / "test.jsonl", pattern_rows(["c"]))
    with pytest.raises(ConfigError, match=r"limit = 0: .*greater than or equal to 1"):
        evaluate(tiny_llama_dir, tiny_llama_dir, data, tmp_path / "out", limit=0)
