"""Tiny configs for the sweep and search tests (the tiny Llama from the session fixture)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

WORDS = "the capital of france is paris rome madrid water boils at one hundred degrees sun rises in east".split()


def qa_file(path: Path, n: int = 40, seed: int = 0) -> Path:
    rng = random.Random(seed)
    rows = [
        {"prompt": " ".join(rng.choice(WORDS) for _ in range(6)), "completion": " ".join(rng.choice(WORDS) for _ in range(3))}
        for _ in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def search_config(tmp_path, tiny_llama_dir):
    """``search_config(**sections)``: a LoRA SFT config on the tiny Llama, 6 steps per training."""

    def make(**sections):
        cfg = {
            "name": "t",
            "task": "sft",
            "data": {"path": str(qa_file(tmp_path / "train.jsonl")), "val_fraction": 0.2, "test_fraction": 0.0},
            "model": {"name": str(tiny_llama_dir), "max_length": 64},
            "train": {"batch_size": 4, "max_steps": 6, "eval_steps": 2, "bf16": False},
            "tracking": {"runs_dir": str(tmp_path / "runs")},
        }
        for section, values in sections.items():
            cfg.setdefault(section, {}).update(values)
        return cfg

    return make
