"""Session fixtures: pattern data and a tiny Llama trained on it (seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_helpers import WORDS, pattern_rows, train_sft, write_jsonl


@pytest.fixture(scope="session")
def pattern_data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pattern")
    return {
        "train": write_jsonl(root / "train.jsonl", pattern_rows(WORDS[:24])),
        "test": write_jsonl(root / "test.jsonl", pattern_rows(WORDS[24:])),
    }


@pytest.fixture(scope="session")
def trained_llama_dir(tiny_llama_dir, pattern_data, tmp_path_factory) -> Path:
    rows = [json.loads(line) for line in pattern_data["train"].read_text().splitlines()]
    return train_sft(tiny_llama_dir, rows, tmp_path_factory.mktemp("trained"))


@pytest.fixture(scope="session")
def general_text(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("general") / "general.txt"
    path.write_text(
        "The capital of France is Paris, and the capital of Italy is Rome.\n\n"
        "Water boils at one hundred degrees. The sun rises in the east and sets in the west.\n\n"
        "The market rose today after the bank cut rates.\n\n"
        "Open the settings page and choose the reset option to change your password.\n",
        encoding="utf-8",
    )
    return path
