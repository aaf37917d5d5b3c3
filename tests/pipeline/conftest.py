"""A tiny SFT pipeline config on the tiny Llama: a few steps per training, cheap audit checks."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

WORDS = "the capital of france is paris rome madrid water boils at one hundred degrees sun rises in east".split()


def qa_file(path: Path, n: int = 60, seed: int = 0) -> Path:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        answer = " ".join(rng.choice(WORDS) for _ in range(2))
        rows.append({"prompt": " ".join(rng.choice(WORDS) for _ in range(7)), "completion": answer, "answers": [answer]})
    rows += [rows[0]] * 3  # exact duplicates for curation to find
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def pipeline_config(tmp_path, tiny_llama_dir):
    """``pipeline_config(**sections)``: the whole pipeline on the tiny Llama with a tiny budget."""

    def make(**sections):
        cfg = {
            "name": "p",
            "task": "sft",
            "data": {"path": str(qa_file(tmp_path / "data.jsonl")), "val_fraction": 0.2, "test_fraction": 0.25},
            "model": {"name": str(tiny_llama_dir), "max_length": 64},
            "train": {"batch_size": 4, "max_steps": 4, "eval_steps": 2, "bf16": False},
            "search": {"n_trials": 2, "pruner": "none"},
            "eval": {"metric": "token_f1", "max_new_tokens": 4, "bootstrap": 1000},
            "audit": {"checks": ["exact_duplicate", "near_duplicate", "low_quality", "too_long"]},
            "pipeline": {"sweep_lrs": [1e-4, 1e-3, 1e-2], "sweep_steps": 2, "tune_steps": 2},
            "tracking": {"runs_dir": str(tmp_path / "runs")},
        }
        for section, values in sections.items():
            if isinstance(values, dict):
                cfg.setdefault(section, {}).update(values)
            else:
                cfg[section] = values
        return cfg

    return make
