"""The lr-sweep and tune commands: thin wrappers that print the result and where it is."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from tuneproof.cli import app


def test_lr_sweep_then_tune_from_the_command_line(search_config, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(search_config(search={"pruner": "none"})))
    runner = CliRunner()
    result = runner.invoke(app, ["lr-sweep", str(path), "--lrs", "1e-4,1e-3,1e-2", "--steps", "4"])
    assert result.exit_code == 0, result.output
    assert "recommended range for tune" in result.output
    assert all(rate in result.output for rate in ("1e-04", "1e-03", "1e-02"))  # the table's rates, unfolded
    sweep = json.loads((tmp_path / "runs" / "t" / "lr_sweep" / "lr_sweep.json").read_text())
    assert [p["lr"] for p in sweep["points"]] == [1e-4, 1e-3, 1e-2]

    result = runner.invoke(app, ["tune", str(path), "--n-trials", "1", "--study-name", "cli"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "from the lr sweep" in out
    assert f"tuneproof train {tmp_path / 'runs' / 't' / 'tune' / 'best.yaml'}" in out
    trials = json.loads((tmp_path / "runs" / "t" / "tune" / "trials.json").read_text())
    assert trials["study"] == "cli" and len(trials["trials"]) == 1
    low, high = sweep["recommended"]["low"], sweep["recommended"]["high"]
    assert low <= trials["trials"][0]["params"]["lr"] <= high
