from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from tuneproof.cli import app

runner = CliRunner()
COMMANDS = ["audit", "curate", "augment", "lr-sweep", "tune", "train", "evaluate", "run", "report", "demo", "ui"]


def test_help_lists_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_real_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output and len(result.output) > 200


@pytest.fixture
def config_file(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text(
        json.dumps({"prompt": "Capital of France?", "completion": "Paris"})
        + "\n{broken\n"
        + json.dumps({"prompt": "Capital of Italy?", "completion": "Rome"})
        + "\n"
        # Enough rows that the default val and test fractions each get one.
        + "".join(json.dumps({"prompt": f"What is {i} plus {i}?", "completion": str(2 * i)}) + "\n" for i in range(20))
    )
    path = tmp_path / "tuneproof.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "task": "sft", "data": {"path": "train.jsonl"}, "tracking": {"runs_dir": "runs"}}))
    return path


def test_config_errors_exit_1_without_traceback(config_file):
    result = runner.invoke(app, ["train", str(config_file), "--set", "train.lr=-1", "--set", "train.batch_size=0"])
    assert result.exit_code == 1
    assert "2 problems" in result.output and "train.lr = -1" in result.output and "train.batch_size = 0" in result.output
    assert "Traceback" not in result.output


def test_check_reports_schema_and_rejects(config_file, tmp_path, tiny_llama_dir):
    result = runner.invoke(app, ["check", str(config_file), "--set", f"model.name={tiny_llama_dir}"])
    assert result.exit_code == 0, result.output
    assert "prompt_completion" in result.output and "1 rejected" in result.output
    rejects = tmp_path / "runs" / "t" / "check" / "rejects.jsonl"
    assert json.loads(rejects.read_text().splitlines()[0])["id"] == "train.jsonl:2"


def test_ui_without_a_store_explains(tmp_path):
    result = runner.invoke(app, ["ui", str(tmp_path)])
    assert result.exit_code == 1 and "no MLflow tracking store" in result.output


def test_console_script_and_version():
    done = subprocess.run([sys.executable, "-m", "tuneproof.cli", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and "tuneproof 0.1.0" in done.stdout


def test_console_script_error_has_no_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tuneproof.cli", "train", str(tmp_path / "missing.yaml")], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert "file not found" in done.stderr and "Traceback" not in done.stderr
