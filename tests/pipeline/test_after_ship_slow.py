"""The whole path on a real pipeline run: run -> model card -> export (merged, gguf) -> predict -> chat."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tuneproof.cli import app
from tuneproof.pipeline import run


@pytest.mark.slow
def test_a_pipeline_run_exports_predicts_and_chats(pipeline_config, tmp_path):
    rd = run(pipeline_config()).run_dir
    report = json.loads((rd / "report.json").read_text())
    runner = CliRunner()
    res = runner.invoke(app, ["export", str(rd), "--format", "gguf", "--out", str(tmp_path / "g")])
    assert res.exit_code == 0, res.output
    info = json.loads((tmp_path / "g" / "export.json").read_text())
    assert [c["passed"] for c in info["checks"]] == [True, True] and info["proven"] == report["sections"]["verdict"]["ship"]
    card = (tmp_path / "g" / "README.md").read_text()
    cur = report["sections"]["audit"]["curation"]
    assert f"- Curation: {cur['input_rows']} input rows = {cur['kept']} kept + {cur['removed']} removed" in card
    adapter = json.loads((rd / "train" / "model" / "adapter_config.json").read_text())
    assert f"rank {adapter['r']}, alpha {adapter['lora_alpha']}," in card  # as trained, after the search's choice
    tr = report["sections"]["training"]
    assert f"- Learning rate {tr['data']['lr']:.4g}, chosen by: {tr['data']['lr_source']}" in card
    assert f"- Search: {report['sections']['search']['n_trials']} trials" in card
    res = runner.invoke(app, ["predict", str(rd), "--data", str(rd / "split" / "test.jsonl"), "--out", str(tmp_path / "p.jsonl")])
    assert res.exit_code == 0, res.output
    n_test = len((rd / "split" / "test.jsonl").read_text().splitlines())
    assert len((tmp_path / "p.jsonl").read_text().splitlines()) == n_test
    res = runner.invoke(app, ["chat", str(rd)], input="the capital of france\n")
    assert res.exit_code == 0 and [x.split(":")[0] for x in res.stdout.splitlines()[-2:]] == ["base", "tuned"]
