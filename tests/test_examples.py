"""Every shipped example config loads and validates (torchtune's test_configs pattern)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneproof.config import load_config

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.yaml"))


def test_there_are_examples():
    assert len(EXAMPLES) >= 4


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_config_is_valid(path):
    cfg = load_config(path)
    assert cfg.name and cfg.task in ("sft", "classification")
    assert "Data:" in path.read_text(), "each example says how its data is fetched"
