"""`tuneproof evaluate`: a thin command over tuneproof.evaluate, with clear errors."""

from __future__ import annotations

import json

from eval_helpers import pattern_rows, write_jsonl
from typer.testing import CliRunner

from tuneproof.cli import app

runner = CliRunner()


def test_cli_writes_eval_json_and_records(tiny_llama_dir, trained_llama_dir, pattern_data, tmp_path):
    out = tmp_path / "eval"
    result = runner.invoke(app, [
        "evaluate", "--base", str(tiny_llama_dir), "--tuned", str(trained_llama_dir),
        "--data", str(pattern_data["test"]), "--out", str(out), "--limit", "8", "--metric", "token_f1",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "verdict: IMPROVED" in result.output
    saved = json.loads((out / "eval.json").read_text())
    assert saved["n_records"] == 8 and saved["metric"] == "token_f1" and saved["verdict"] == "improved"
    assert len((out / "records.jsonl").read_text().splitlines()) == 8


def test_cli_takes_settings_from_a_config(tiny_llama_dir, pattern_data, tmp_path):
    cfg = tmp_path / "tuneproof.yaml"
    cfg.write_text(
        f"name: t\ntask: sft\ndata: {{path: {pattern_data['train']}, eval_path: {pattern_data['test']}}}\n"
        f"model: {{name: {tiny_llama_dir}}}\neval: {{limit: 3, metric: exact_match}}\n"
        f"tracking: {{runs_dir: {tmp_path / 'runs'}}}\n"
    )
    out = tmp_path / "eval"
    result = runner.invoke(app, ["evaluate", "--config", str(cfg), "--tuned", str(tiny_llama_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "eval.json").read_text())
    assert saved["n_records"] == 3 and saved["metric"] == "exact_match" and saved["verdict"] == "no_change"
    # The config's tracking store received the evaluation as an MLflow run.
    assert saved["mlflow_run_id"]
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    run = mlflow.get_run(saved["mlflow_run_id"])
    assert run.data.tags["tuneproof.verdict"] == "no_change"
    assert run.data.metrics["eval/tuned/exact_match"] == saved["metrics"]["tuned"]["exact_match"]


def test_cli_bad_input_is_one_clear_message(tiny_llama_dir, tmp_path):
    data = write_jsonl(tmp_path / "t.jsonl", pattern_rows(["a"]))
    result = runner.invoke(app, [
        "evaluate", "--base", str(tiny_llama_dir), "--tuned", str(tmp_path / "missing"),
        "--data", str(data), "--out", str(tmp_path / "o"),
    ])  # fmt: skip
    assert result.exit_code == 1
    assert "error:" in result.output and "Traceback" not in result.output
    missing = runner.invoke(app, ["evaluate", "--tuned", "x", "--out", str(tmp_path / "o")])
    assert missing.exit_code == 1 and "--base and --data" in missing.output
