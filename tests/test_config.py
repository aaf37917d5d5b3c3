from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tuneproof.config import RunConfig, load_config
from tuneproof.errors import ConfigError

MINIMAL = {"name": "x", "task": "sft", "data": {"path": "train.jsonl"}}


def write(tmp_path, text: str):
    path = tmp_path / "tuneproof.yaml"
    path.write_text(text)
    return path


def test_minimal_config_gets_defaults(tmp_path):
    cfg = load_config(write(tmp_path, yaml.safe_dump(MINIMAL)))
    assert isinstance(cfg, RunConfig)
    assert cfg.model.name == "smollm2-135m" and cfg.model.method == "lora"
    assert cfg.model.lora.resolved_alpha == 2 * cfg.model.lora.r
    assert cfg.train.early_stopping.enabled
    assert cfg.primary_metric == "nll"
    # Relative paths resolve against the config file's folder, not the working directory.
    assert cfg.data.path == str(tmp_path / "train.jsonl")
    # The default runs directory is relative to the working directory.
    assert cfg.tracking.resolved_uri() == f"sqlite:///{Path.cwd() / 'runs' / 'mlflow.db'}"


def test_dotted_overrides_parse_yaml_values(tmp_path):
    cfg = load_config(
        write(tmp_path, yaml.safe_dump(MINIMAL)),
        overrides=["train.lr=3e-4", "model.lora.r=32", "train.bf16=false", "model.lora.target_modules=[q_proj, v_proj]"],
    )
    assert cfg.train.lr == pytest.approx(3e-4)
    assert cfg.model.lora.r == 32 and cfg.model.lora.resolved_alpha == 64
    assert cfg.train.bf16 is False
    assert cfg.model.lora.target_modules == ["q_proj", "v_proj"]


def test_every_error_is_reported_at_once_with_line_value_and_fix(tmp_path):
    path = write(
        tmp_path,
        """\
name: ok
task: sftt
data:
  path: d.jsonl
model:
  method: loraa
train:
  lr: -1
  batch_size: 0
  learning_rate: 1e-4
eval:
  bootstrap: 10
""",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides=["train.epochs=0"])
    problems = info.value.problems
    text = str(info.value)
    assert len(problems) == 7, text
    assert "line 2: task = 'sftt'" in text and "'sft' or 'classification'" in text
    assert "line 6: model.method = 'loraa'" in text
    assert "line 8: train.lr = -1" in text and "greater than 0" in text and "2e-4" in text
    assert "line 9: train.batch_size = 0" in text
    assert "line 10: train.learning_rate: unknown setting" in text and "lr," in text
    assert "eval.bootstrap = 10" in text
    assert "(from --set train.epochs=0) train.epochs = 0" in text


def test_cross_section_rules_run_even_when_other_sections_fail(tmp_path):
    raw = {
        "name": "x",
        "task": "classification",
        "data": {"path": "d.csv", "val_fraction": -1},
        "model": {"method": "full"},
        "search": {"space": {"lora_r": {"choices": [8, 16]}}},
        "eval": {"metric": "rouge_l"},
    }
    with pytest.raises(ConfigError) as info:
        load_config(raw)
    text = str(info.value)
    assert "data.val_fraction = -1" in text
    assert "eval.metric = 'rouge_l': not a metric for task classification" in text
    assert "only apply to model.method=lora" in text


@pytest.mark.parametrize(
    ("space", "expected"),
    [
        ({"lr": {"low": 1e-3, "high": 1e-5, "log": True}}, "inverted range"),
        ({"lr": {"low": 1e-4, "high": 1e-4}}, "inverted range"),
        ({"lr": {"low": 0, "high": 1e-3, "log": True}}, "log range needs low > 0"),
        ({"weight_decay": {"choices": []}}, "choices is empty"),
        ({"learning_rate": {"low": 1e-5, "high": 1e-3}}, "unknown search parameter"),
        ({"lr": {"low": 1e-5}}, "needs both low and high"),
    ],
)
def test_search_space_errors(space, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config({**MINIMAL, "search": {"space": space}})


def test_missing_required_fields_and_unknown_sections():
    with pytest.raises(ConfigError) as info:
        load_config({"trian": {"lr": 1e-4}})
    text = str(info.value)
    assert "trian: unknown section (did you mean 'train'?)" in text
    assert "data: missing" in text and "name: missing" in text and "task: missing" in text


def test_section_that_is_not_a_mapping():
    with pytest.raises(ConfigError, match="train: expected a mapping"):
        load_config({**MINIMAL, "train": 3})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "empty"),
        ("name: [unclosed\n", "line 2, column 1: invalid YAML"),
        ("name: a\n  task: b\n", "invalid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
    ],
)
def test_unreadable_yaml(tmp_path, text, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("bad", ["train.lr", "=3", "train..lr=1", "train.lr.x=1"])
def test_malformed_overrides(bad):
    with pytest.raises(ConfigError, match="--set"):
        load_config(MINIMAL, overrides=[bad])


def test_to_yaml_round_trips(tmp_path):
    cfg = load_config(MINIMAL, overrides=["train.lr=1e-4"])
    again = load_config(write(tmp_path, cfg.to_yaml()))
    assert again.model_dump() == cfg.model_dump()


def test_unknown_keys_in_nested_sections_suggest_the_right_name():
    raw = {
        **MINIMAL,
        "search": {"space": {"lr": {"lo": 1e-5, "high": 1e-3}}},
        "train": {"early_stopping": {"patiance": 2}},
        "model": {"lora": {"rr": 8}},
    }
    with pytest.raises(ConfigError) as info:
        load_config(raw)
    text = str(info.value)
    assert "search.space.lr.lo: unknown setting (did you mean 'low'?)" in text
    assert "train.early_stopping.patiance: unknown setting (did you mean 'patience'?)" in text
    assert "model.lora.rr: unknown setting (did you mean 'r'?)" in text


def test_a_mapping_source_is_not_modified():
    raw = {"name": "x", "task": "sft", "data": {"path": "d.jsonl"}}
    load_config(raw, overrides=["data.val_fraction=0.2"])
    assert raw == {"name": "x", "task": "sft", "data": {"path": "d.jsonl"}}


def test_a_forgetting_corpus_name_is_not_resolved_as_a_path(tmp_path):
    from tuneproof.config import FORGETTING_CORPORA
    from tuneproof.evaluate._forgetting import CORPORA

    assert set(FORGETTING_CORPORA) == set(CORPORA)
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ntask: sft\ndata: {path: d.jsonl}\neval: {forgetting_text: xsum}\n")
    assert load_config(path).eval.forgetting_text == "xsum"


def test_early_stopping_monitor_resolves_per_task_and_refuses_a_metric_for_sft(tmp_path):
    from tuneproof.config import load_config
    from tuneproof.errors import ConfigError

    base = {"name": "m", "data": {"path": str(tmp_path / "d.jsonl")}}
    assert load_config({**base, "task": "classification"}).monitors_metric
    assert not load_config({**base, "task": "sft"}).monitors_metric
    off = {"train": {"early_stopping": {"monitor": "val_loss"}}}
    assert not load_config({**base, "task": "classification", **off}).monitors_metric
    with pytest.raises(ConfigError, match=r"train.early_stopping.monitor = 'val_metric'.*Fix: use val_loss"):
        load_config({**base, "task": "sft", "train": {"early_stopping": {"monitor": "val_metric"}}})
