"""Configs that can't work fail before training, with a message naming the problem and the fix."""

from __future__ import annotations

import pytest

from tuneproof.errors import ConfigError, DataError
from tuneproof.train import train


def assert_nothing_trained(cfg):
    from pathlib import Path

    assert not (Path(cfg["tracking"]["runs_dir"]) / "t" / "train" / "checkpoints").exists()


def test_lora_target_modules_missing_from_the_model(tiny_llama_dir, make_config):
    cfg = make_config(tiny_llama_dir, model={"lora": {"target_modules": ["q_proj", "query_key_value"]}})
    with pytest.raises(ConfigError) as err:
        train(cfg)
    msg = str(err.value)
    assert "['query_key_value'] not found" in msg and "q_proj" in msg and "all-linear" in msg
    assert_nothing_trained(cfg)


def test_labels_missing_from_the_label_map(tiny_bert_dir, make_config, sentiment_rows):
    rows = sentiment_rows(20) + [{"text": "so so film", "label": "meh"}]
    cfg = make_config(tiny_bert_dir, task="classification", rows=rows, model={"labels": ["neg", "pos"]})
    with pytest.raises(DataError) as err:
        train(cfg)
    msg = str(err.value)
    assert "train.jsonl:21 ('meh')" in msg and "Missing labels: ['meh']" in msg and "model.labels" in msg
    assert_nothing_trained(cfg)


def test_max_length_past_the_model_context(tiny_llama_dir, make_config):
    cfg = make_config(tiny_llama_dir, model={"max_length": 4096})
    with pytest.raises(ConfigError) as err:
        train(cfg)
    assert "longer than the context" in str(err.value) and "at most 512" in str(err.value)
    assert_nothing_trained(cfg)


def test_empty_validation_split(tiny_llama_dir, make_config, qa_rows):
    cfg = make_config(tiny_llama_dir, rows=qa_rows(4), data={"val_fraction": 0.1})
    with pytest.raises(DataError) as err:
        train(cfg)
    assert "validation split is empty" in str(err.value) and "val_fraction" in str(err.value)
    assert_nothing_trained(cfg)


def test_classification_data_for_sft_is_refused(tiny_llama_dir, make_config, sentiment_rows):
    cfg = make_config(tiny_llama_dir, rows=sentiment_rows(20))
    with pytest.raises(DataError, match="can't be used for task sft"):
        train(cfg)


def test_resume_without_checkpoint(tiny_llama_dir, make_config):
    with pytest.raises(ConfigError, match="no checkpoint"):
        train(make_config(tiny_llama_dir), resume=True)


def test_cli_train_runs_and_reports_bad_config(tiny_llama_dir, make_config, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from tuneproof.cli import app

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(make_config(tiny_llama_dir)))
    ok = CliRunner().invoke(app, ["train", str(path), "--set", "train.max_steps=2"])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "runs" / "t" / "train" / "train.json").is_file()
    bad = CliRunner().invoke(app, ["train", str(path), "--set", "model.max_length=100000"])
    assert bad.exit_code == 1 and "longer than the context" in bad.output and "Traceback" not in bad.output
