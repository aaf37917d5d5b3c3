"""Inputs that cannot train stop `tuneproof check` and `tuneproof run` before any model loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tuneproof.cli import app
from tuneproof.config import load_config
from tuneproof.errors import DataError
from tuneproof.pipeline import run
from tuneproof.pipeline._inputs import check_inputs, check_split, label_problems, split_size_problems

runner = CliRunner()


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _qa(n: int) -> list[dict]:
    return [{"prompt": f"What is {i} plus {i}?", "completion": str(2 * i)} for i in range(n)]


def _reviews(n: int, labels=("pos", "neg")) -> list[dict]:
    return [{"text": f"review number {i} says it was {labels[i % len(labels)]}", "label": labels[i % len(labels)]}
            for i in range(n)]  # fmt: skip


def _config(tmp_path: Path, task: str, data: Path, model: str = "minilm", **data_extra) -> Path:
    path = tmp_path / "tuneproof.yaml"
    cfg = {"name": "t", "task": task, "data": {"path": str(data), **data_extra}, "model": {"name": model},
           "tracking": {"runs_dir": str(tmp_path / "runs")}}  # fmt: skip
    path.write_text(yaml.safe_dump(cfg))
    return path


def _check(config: Path, tiny_dir: Path):
    result = runner.invoke(app, ["check", str(config), "--set", f"model.name={tiny_dir}"])
    return result.exit_code, " ".join(result.output.split())


def test_classification_on_prompt_completion_data_is_refused(tmp_path, tiny_bert_dir):
    data = _jsonl(tmp_path / "qa.jsonl", _qa(30))
    code, out = _check(_config(tmp_path, "classification", data), tiny_bert_dir)
    assert code == 1
    assert "task classification needs text and label columns" in out and "prompt_completion: prompt, completion" in out
    assert "Fix: use task: sft" in out and str(data) in out
    # the same config as sft passes
    assert _check(_config(tmp_path, "sft", data), tiny_bert_dir)[0] == 0


def test_a_single_class_is_refused(tmp_path, tiny_bert_dir):
    data = _jsonl(tmp_path / "one.jsonl", _reviews(30, labels=("pos",)))
    code, out = _check(_config(tmp_path, "classification", data), tiny_bert_dir)
    assert code == 1 and "one.jsonl: every one of its 30 records has the label 'pos'" in out and "Fix:" in out
    data = _jsonl(tmp_path / "two.jsonl", _reviews(30))
    assert _check(_config(tmp_path, "classification", data), tiny_bert_dir)[0] == 0


def test_eval_labels_unseen_in_training_are_refused(tmp_path, tiny_bert_dir):
    data = _jsonl(tmp_path / "train.jsonl", _reviews(30))
    ev = _jsonl(tmp_path / "eval.jsonl", _reviews(10, labels=("1", "0")))
    code, out = _check(_config(tmp_path, "classification", data, eval_path=str(ev)), tiny_bert_dir)
    assert code == 1
    assert "eval.jsonl: 10 eval record(s) carry labels ['0', '1'] that the training data train.jsonl never shows" in out
    assert "eval.jsonl:1 ('1')" in out and "Fix: use the same label names" in out


def test_a_training_label_absent_from_eval_is_a_warning_only(tmp_path, tiny_bert_dir):
    data = _jsonl(tmp_path / "train.jsonl", _reviews(30, labels=("pos", "neg", "meh")))
    ev = _jsonl(tmp_path / "eval.jsonl", _reviews(10))
    code, out = _check(_config(tmp_path, "classification", data, eval_path=str(ev)), tiny_bert_dir)
    assert code == 0, out
    assert "warning: eval.jsonl: no eval record has the label(s) ['meh']" in out


@pytest.mark.parametrize("eval_rows", [
    [{"text": "an unrelated paragraph"}] * 5,  # another schema: shares no field
    [{"question": "q?", "answer": "a"}] * 5,  # no schema at all
])  # fmt: skip
def test_an_eval_file_that_shares_nothing_with_training_is_refused(tmp_path, tiny_llama_dir, eval_rows):
    data = _jsonl(tmp_path / "train.jsonl", _qa(30))
    ev = _jsonl(tmp_path / "eval.jsonl", eval_rows)
    code, out = _check(_config(tmp_path, "sft", data, eval_path=str(ev)), tiny_llama_dir)
    assert code == 1 and "data.eval_path" in out and "eval.jsonl" in out
    assert "prompt_completion: prompt, completion" in out and "unset data.eval_path" in out
    assert "Traceback" not in out


def test_a_split_that_would_be_empty_is_refused(tmp_path, tiny_llama_dir):
    data = _jsonl(tmp_path / "few.jsonl", _qa(4))
    code, out = _check(_config(tmp_path, "sft", data), tiny_llama_dir)
    assert code == 1 and "few.jsonl: 4 readable records with data.val_fraction=0.1 leave the validation split empty" in out
    assert "raise data.val_fraction" in out
    code, out = _check(_config(tmp_path, "sft", data, test_fraction=0), tiny_llama_dir)
    assert "data.test_fraction=0 and no data.eval_path" in out


def test_split_sizes_follow_the_splitters_rounding_per_label():
    assert split_size_problems(10, 0.1, 0.1) == []  # round(1.0) = 1 each
    assert len(split_size_problems(4, 0.1, 0.1)) == 2  # round(0.4) = 0
    # stratified: 4 labels of 4 records each get round(0.4) = 0 per label, though 16 * 0.1 rounds to 2
    from collections import Counter

    problems = split_size_problems(16, 0.1, None, strata=Counter({"a": 4, "b": 4, "c": 4, "d": 4}))
    assert len(problems) == 1 and "cut per label: a: 4" in problems[0] and "per label" in problems[0]


def test_every_problem_is_reported_at_once(tmp_path):
    data = _jsonl(tmp_path / "one.jsonl", _reviews(4, labels=("pos",)))
    found = check_inputs(load_config(yaml.safe_load(_config(tmp_path, "classification", data).read_text())))
    assert len(found.problems) == 3  # one class, empty val, empty test
    with pytest.raises(DataError, match="3 problems"):
        found.raise_for_problems()


def test_label_problems_compare_labels_as_text():
    train = [_rec("t", i, lab) for i, lab in enumerate([0, 1, 0, 1])]
    ev = [_rec("e", i, lab) for i, lab in enumerate(["0", "1"])]
    assert label_problems(train, "t", ev, "e") == ([], [])
    problems, _ = label_problems(train, "t", ev, "e", labels=["0"])
    assert "labels ['1'] are not in model.labels ['0']" in problems[0]


def _rec(name: str, i: int, label):
    from tuneproof.data import Record, Schema

    return Record(f"{name}:{i}", Schema.TEXT_LABEL, {"text": f"x {i}", "label": label})


def test_check_split_names_curation_when_it_emptied_a_split(tmp_path):
    curate = tmp_path / "curate"
    curate.mkdir()
    counts = {"input_rows": 40, "kept": 2, "removed": 38, "removed_by_check": {"exact_duplicate": 38}}
    (curate / "manifest.json").write_text(json.dumps({"counts": counts}))
    with pytest.raises(DataError) as err:
        check_split({"train": 2, "val": 0, "test": 0}, [], [], task="sft", source=curate / "kept.jsonl", curate_dir=curate)
    msg = str(err.value)
    assert "after curation and the split, val, test are empty" in msg and "curation kept 2 of 40 rows" in msg
    assert "exact_duplicate" in msg and "removed.jsonl" in msg


def test_check_split_catches_a_class_that_curation_removed(tmp_path):
    train = [_rec("t", i, "pos") for i in range(8)]
    test = [_rec("s", 0, "pos"), _rec("s", 1, "neg")]
    with pytest.raises(DataError) as err:
        check_split({"train": 8, "val": 1, "test": 2}, train, test, task="classification", source=tmp_path / "kept.jsonl")
    msg = str(err.value)
    assert "the label 'pos'" in msg and "labels ['neg'] that the training data" in msg


def test_run_stops_before_any_stage_on_inputs_that_cannot_train(pipeline_config, tmp_path):
    data = _jsonl(tmp_path / "qa.jsonl", _qa(30))
    cfg = pipeline_config(task="classification", data={"path": str(data)}, eval={"metric": "accuracy"})
    with pytest.raises(DataError, match="task classification needs text and label columns"):
        run(cfg)
    run_dir = Path(cfg["tracking"]["runs_dir"]) / "p"
    assert not (run_dir / "pipeline.json").exists() and not (run_dir / "audit").exists()


def test_run_stops_after_curation_empties_a_split_before_the_model_loads(pipeline_config, tmp_path):
    # 40 rows, only 2 distinct: curation removes 38 exact duplicates, the split has no val or test
    rows = [{"prompt": "what is the capital of france", "completion": "paris"},
            {"prompt": "what is the capital of italy", "completion": "rome"}] * 20  # fmt: skip
    data = _jsonl(tmp_path / "dups.jsonl", rows)
    cfg = pipeline_config(data={"path": str(data)},
                          audit={"checks": ["exact_duplicate"], "max_check_removed_share": 1, "max_removed_share": 1})  # fmt: skip
    with pytest.raises(DataError) as err:
        run(cfg)
    msg = " ".join(str(err.value).split())
    assert "after curation and the split" in msg and "curation kept 2 of 40 rows" in msg
    ledger = json.loads((Path(cfg["tracking"]["runs_dir"]) / "p" / "pipeline.json").read_text())
    status = {s["name"]: s["status"] for s in ledger["stages"]}
    assert status["split"] == "failed" and status["baseline"] == "not_run" and status["train"] == "not_run"
    assert not (Path(cfg["tracking"]["runs_dir"]) / "p" / "split" / "train.jsonl").exists()
