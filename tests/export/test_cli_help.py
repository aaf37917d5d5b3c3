"""The after-ship commands are listed and have real help."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tuneproof.cli import app

runner = CliRunner()


@pytest.mark.parametrize("command", ["export", "predict", "chat"])
def test_each_after_ship_command_has_real_help(command):
    assert command in runner.invoke(app, ["--help"]).output
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output and "run_dir" in result.output.lower() and len(result.output) > 200
