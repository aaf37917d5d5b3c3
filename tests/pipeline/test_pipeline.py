"""The pipeline end to end on the tiny Llama: contract files, skip-if-unchanged, resume, decision, strict."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from tuneproof.cli import app
from tuneproof.errors import TuneproofError
from tuneproof.pipeline import run

CONTRACT = [
    "config.yaml", "pipeline.json", "preflight/preflight.json", "audit/findings.jsonl", "audit/audit.json",
    "curate/kept.jsonl", "curate/removed.jsonl", "curate/unreadable.jsonl", "curate/manifest.json",
    "split/train.jsonl", "split/val.jsonl", "split/test.jsonl", "split/split.json",
    "lr_sweep/lr_sweep.json", "lr_sweep/lr_sweep.png", "tune/best.yaml", "tune/trials.json",
    "train/train.json", "train/model", "evaluate/eval.json", "evaluate/records.jsonl", "decision.json",
]  # fmt: skip


def _status(result):
    return {s["name"]: s["status"] for s in result.stages}


def test_full_run_writes_the_contract_then_skips_unchanged_and_reruns_only_what_changed(pipeline_config):
    cfg = pipeline_config()
    first = run(cfg)
    rd = first.run_dir
    missing = [p for p in CONTRACT if not (rd / p).exists()]
    assert not missing
    assert all(v in ("done", "not_run") for k, v in _status(first).items() if k not in ("augment", "data_value"))
    assert _status(first)["augment"] == "off" and _status(first)["data_value"] == "off"  # off unless switched on
    ledger = json.loads((rd / "pipeline.json").read_text())
    assert {s["name"] for s in ledger["stages"]} >= {"audit", "curate", "split", "baseline", "preflight", "lr_sweep", "tune", "train", "evaluate", "decision", "report"}
    assert all(len(s["input_hash"]) == 64 and len(s["config_hash"]) == 64 for s in ledger["stages"] if s["status"] == "done")
    assert ledger["versions"]["torch"] and list(ledger["data_hashes"].values())[0] != ""
    # the audit measured length against this run's model.max_length, as training cuts
    assert json.loads((rd / "audit/audit.json").read_text())["settings"]["max_tokens"] == 64
    # the curation found the duplicates planted in the data, and the split kept them out of test/val
    manifest = json.loads((rd / "curate/manifest.json").read_text())
    assert manifest["counts"]["removed_by_check"].get("exact_duplicate", 0) >= 3
    split = json.loads((rd / "split/split.json").read_text())
    assert sum(split["counts"].values()) == manifest["counts"]["kept"]
    pre = json.loads((rd / "preflight/preflight.json").read_text())
    assert pre["estimates"]["train_tokens"] > 0 and pre["min_detectable_effect"]["n_test"] == split["counts"]["test"]
    assert {"code", "level", "evidence", "fix"} <= set(pre["risks"][0])
    # the base model scored the test split before training; the MDE takes its measured variance plus
    # the bound for the tuned model's, so it is "at most", a medium risk
    base = json.loads((rd / "baseline/baseline.json").read_text())
    assert base["n"] == split["counts"]["test"] and base["metric"] == "token_f1"
    assert pre["min_detectable_effect"]["variance_source"].startswith("measured: the base model zero-shot")
    (small,) = [r for r in pre["risks"] if r["code"] == "test_too_small"]
    assert small["level"] == "medium" and "is at most" in small["evidence"] and "variance bound" in small["evidence"]
    # the evaluation reused those scores instead of scoring the base again
    ev = json.loads((rd / "evaluate/eval.json").read_text())
    assert ev["details"]["base_scores"] == str(rd / "baseline/records.jsonl")
    assert ev["metrics"]["base"]["token_f1"] == base["mean"]
    # the final training keeps the planned examples (4 steps x batch 4) whatever batch the search chose
    best_batch = yaml.safe_load((rd / "tune/best.yaml").read_text())["train"]["batch_size"]
    trained = json.loads((rd / "train/train.json").read_text())
    assert trained["global_step"] == max(1, round(4 * 4 / best_batch))
    train_mtime = (rd / "train/train.json").stat().st_mtime

    second = run(cfg)
    st = _status(second)
    for name in ("audit", "curate", "split", "baseline", "preflight", "lr_sweep", "tune", "train", "evaluate"):
        assert st[name] == "skipped_unchanged", (name, st)
    assert (rd / "train/train.json").stat().st_mtime == train_mtime

    changed = pipeline_config(eval={"metric": "token_f1", "max_new_tokens": 3, "bootstrap": 1000})
    third = run(changed)
    st = _status(third)
    # the generation budget changes what the base model is scored with: the baseline scores again
    # (and the preflight reruns when its scores changed); no training stage reruns
    assert st["baseline"] == st["evaluate"] == st["decision"] == "done"
    assert json.loads((rd / "evaluate/eval.json").read_text())["details"]["base_scores"].endswith("records.jsonl")
    for name in ("audit", "curate", "split", "lr_sweep", "tune", "train"):
        assert st[name] == "skipped_unchanged", (name, st)
    assert json.loads((rd / "evaluate/eval.json").read_text())["details"] is not None

    # MLflow: one parent run for the pipeline, the sweep, the search, the training and the evaluation as children
    from tuneproof import track
    from tuneproof.config import load_config

    client = track._client(load_config(cfg).tracking.resolved_uri())
    parent_id = ledger["mlflow_parent_run_id"]
    assert json.loads((rd / "pipeline.json").read_text())["mlflow_parent_run_id"] == parent_id  # reused on rerun
    exp = client.get_experiment_by_name("tuneproof")
    children = client.search_runs([exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    names = " ".join(r.info.run_name for r in children)
    assert "lr-sweep" in names and "tune" in names and "/train" in names and "eval" in names, names
    parents = client.search_runs([exp.experiment_id], filter_string="tags.`tuneproof.stage` = 'pipeline'")
    assert len(parents) == 1


def test_interrupted_tune_resumes_without_redoing_finished_stages(pipeline_config, monkeypatch):
    import tuneproof.search as search

    real_tune = search.tune

    def tune_then_die(*args, **kwargs):
        real_tune(*args, **{**kwargs, "n_trials": 1})
        raise KeyboardInterrupt  # the user pressed Ctrl-C during the second trial

    cfg = pipeline_config(pipeline={"stages": {"lr_sweep": False}, "tune_steps": 2})  # no sweep: keep the test short
    monkeypatch.setattr(search, "tune", tune_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    monkeypatch.setattr(search, "tune", real_tune)
    ledger = json.loads(((run_dir := __import__("pathlib").Path(cfg["tracking"]["runs_dir"]) / "p") / "pipeline.json").read_text())
    st = {s["name"]: s["status"] for s in ledger["stages"]}
    assert st["tune"] == "failed" and st["train"] == "not_run" and st["split"] == "done"
    split_mtime = (run_dir / "split/train.jsonl").stat().st_mtime

    resumed = run(cfg)
    st = _status(resumed)
    for name in ("audit", "curate", "split", "preflight"):
        assert st[name] == "skipped_unchanged", (name, st)
    assert st["tune"] == "done" and st["train"] == "done" and st["evaluate"] == "done"
    assert (run_dir / "split/train.jsonl").stat().st_mtime == split_mtime
    trials = json.loads((run_dir / "tune/trials.json").read_text())
    rows = trials["trials"] if isinstance(trials, dict) else trials
    assert len(rows) == 2  # the finished trial was kept, one more ran: 2 in all, not 3
    assert resumed.decision is not None


def test_an_untrained_model_is_not_proven_and_says_why(pipeline_config, tmp_path):
    # lr ~ 0: the tuned model equals the base, so nothing can be proven. Through the CLI.
    cfg = pipeline_config(train={"lr": 1e-12, "max_steps": 2}, pipeline={"stages": {"lr_sweep": False, "tune": False}})
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = CliRunner().invoke(app, ["run", str(path)])
    assert out.exit_code == 0, out.output
    assert "not proven: do not ship" in out.output
    res = run(cfg)  # everything unchanged: the API returns the same decision without retraining
    assert _status(res)["train"] == "skipped_unchanged"
    dec = res.decision
    assert dec["ship"] is False and dec["headline"] == "not proven: do not ship"
    assert dec["causes"] and all({"code", "evidence", "next"} <= set(c) for c in dec["causes"])
    assert dec["causes"][0]["code"] in {"not_better", "test_too_small", "no_effect", "data_problem", "budget"}
    assert not (res.run_dir / "model").exists()
    st = _status(res)
    assert st["lr_sweep"] == "off" and st["tune"] == "off"


def test_strict_stops_on_a_high_risk_before_training(pipeline_config, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(pipeline_config()))
    out = CliRunner().invoke(app, ["run", str(path), "--strict"])
    assert out.exit_code != 0
    text = " ".join(out.output.split())
    assert "strict mode" in text and "too_few_examples" in text and "Traceback" not in text
    ledger = json.loads((tmp_path / "runs/p/pipeline.json").read_text())
    st = {s["name"]: s["status"] for s in ledger["stages"]}
    assert st["preflight"] == "done" and st["lr_sweep"] == "not_run" and st["train"] == "not_run"
    assert not (tmp_path / "runs/p/train").exists()
    again = CliRunner().invoke(app, ["run", str(path), "--strict"])  # the preflight is now skipped: still stops
    assert again.exit_code != 0 and "strict mode" in " ".join(again.output.split())


def test_strict_raises_from_the_api_too(pipeline_config):
    with pytest.raises(TuneproofError, match="strict mode"):
        run(pipeline_config(pipeline={"strict": True}))


def test_a_given_eval_file_is_the_test_set_as_it_stands(pipeline_config, tmp_path):
    rows = [{"prompt": f"where is city number {i} found", "completion": "in the east", "answers": ["in the east"]}
            for i in range(12)]  # fmt: skip
    test_file = tmp_path / "heldout.jsonl"
    test_file.write_text("".join(json.dumps(r) + "\n" for r in rows + rows[:3]))
    cfg = pipeline_config(data={"eval_path": str(test_file)}, train={"bf16": "auto"},
                          pipeline={"stages": {"lr_sweep": False, "tune": False, "report": False}})  # fmt: skip
    res = run(cfg)
    split = res.run_dir / "split"
    test_ids = [json.loads(line)["id"] for line in (split / "test.jsonl").read_text().splitlines()]
    assert len(test_ids) == 15 and all(i.startswith("heldout.jsonl:") for i in test_ids)  # 12 + 3 duplicates, uncurated
    info = json.loads((split / "split.json").read_text())
    assert info["counts"]["test"] == 15 and info["test_source"] == str(test_file)
    assert info["counts"]["train"] + info["counts"]["val"] > 50  # nothing of the data file went to test
    ev = json.loads((res.run_dir / "evaluate/eval.json").read_text())
    assert ev["n_records"] == 15
    from tuneproof.train import resolve_bf16

    assert ev["details"]["bf16"] is resolve_bf16("auto", on_gpu=False)  # scoring follows train.bf16


def test_a_changed_tuneproof_or_library_reruns_every_stage(pipeline_config):
    cfg = pipeline_config(train={"max_steps": 2}, pipeline={"stages": {"lr_sweep": False, "tune": False}})
    first = run(cfg)
    ledger_path = first.run_dir / "pipeline.json"
    ledger = json.loads(ledger_path.read_text())
    assert len(ledger["versions"]["tuneproof_code"]) == 16
    assert _status(run(cfg))["train"] == "skipped_unchanged"  # same code: reused

    ledger = json.loads(ledger_path.read_text())
    ledger["versions"]["tuneproof_code"] = "0" * 16  # as if the last run was made by other code
    ledger["versions"]["transformers"] = "0.0.1"
    ledger_path.write_text(json.dumps(ledger))
    third = run(cfg)
    st = _status(third)
    for name in ("audit", "curate", "split", "preflight", "train", "evaluate"):
        assert st[name] == "done", (name, st)
    because = json.loads(ledger_path.read_text())["rerun_because"]
    assert any(b.startswith("tuneproof_code 0000000000000000 -> ") for b in because), because
    assert any(b.startswith("transformers 0.0.1 -> ") for b in because), because
    assert _status(run(cfg))["train"] == "skipped_unchanged"  # and the next run reuses again


def test_the_data_is_audited_once_per_run(pipeline_config, monkeypatch):
    import importlib

    curate_module = importlib.import_module("tuneproof.audit.curate")  # the package exports a function of that name
    def no_second_audit(*args, **kwargs):
        raise AssertionError("curate audited the data again after the audit stage")

    monkeypatch.setattr(curate_module, "audit", no_second_audit)
    stages = {s: s in ("audit", "curate") for s in ("audit", "curate", "split", "baseline", "preflight", "lr_sweep", "curation_ab",
                                                     "tune", "train", "evaluate")}  # fmt: skip
    res = run(pipeline_config(pipeline={"stages": stages}))
    status = {s["name"]: s["status"] for s in res.stages}
    assert status["audit"] == status["curate"] == "done"
    manifest = json.loads((res.run_dir / "curate" / "manifest.json").read_text())
    assert manifest["counts"]["removed_by_check"]["exact_duplicate"] == 3
