"""Helpers for the training tests: small real data files and configs for the tiny models."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

WORDS = (
    "the capital of france is paris rome madrid water boils at one hundred degrees sun rises in east "
    "west question who wrote play answer shakespeare movie was wonderful dull slow long market rose"
).split()


def random_text(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _qa_rows(n: int, seed: int = 0, *, prompt=(3, 12), completion=(1, 6)) -> list[dict]:
    rng = random.Random(seed)
    return [{"prompt": random_text(rng, *prompt), "completion": random_text(rng, *completion)} for _ in range(n)]


def _sentiment_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    good, bad = ["wonderful", "moving", "funny"], ["dull", "slow", "long"]
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        words = [rng.choice(good if label == "pos" else bad)] + [rng.choice(WORDS) for _ in range(rng.randint(2, 8))]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "label": label})
    return rows


@pytest.fixture
def make_config(tmp_path):
    """Build a config mapping for a tiny model; keyword sections are merged in."""

    def make(model_dir, task="sft", rows=None, eval_rows=None, **sections):
        data = write_jsonl(tmp_path / "train.jsonl", rows if rows is not None else _qa_rows(40))
        cfg = {
            "name": "t",
            "task": task,
            "data": {"path": str(data), "val_fraction": 0.2, "test_fraction": 0.0},
            "model": {"name": str(model_dir), "max_length": 64},
            "train": {"lr": 1e-3, "batch_size": 4, "max_steps": 6, "eval_steps": 2, "bf16": False},
            "tracking": {"runs_dir": str(tmp_path / "runs")},
        }
        if eval_rows is not None:
            cfg["data"]["eval_path"] = str(write_jsonl(tmp_path / "val.jsonl", eval_rows))
        for section, values in sections.items():
            cfg.setdefault(section, {}).update(values)
        return cfg

    return make


@pytest.fixture
def qa_rows():
    """``qa_rows(n, seed=0, prompt=(lo, hi), completion=(lo, hi))``: random prompt/completion rows."""
    return _qa_rows


@pytest.fixture
def sentiment_rows():
    """``sentiment_rows(n, seed=0)``: alternating pos/neg rows, each holding one cue word."""
    return _sentiment_rows
