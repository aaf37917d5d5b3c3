"""examples/qa_demo.yaml is the demo's config: the same sections and values as DEMO_CONFIG."""

from __future__ import annotations

from pathlib import Path

from tuneproof.config import load_config
from tuneproof.demo import DEMO_CONFIG, DEMO_INSTRUCTION

EXAMPLE = Path(__file__).parents[2] / "examples" / "qa_demo.yaml"


def test_example_matches_the_demo_config():
    example = load_config(EXAMPLE).model_dump(mode="json")
    demo = load_config({**DEMO_CONFIG, "data": {**DEMO_CONFIG["data"], "path": "x.jsonl"}}).model_dump(mode="json")
    for section in ("model", "train", "search", "eval", "pipeline"):
        assert example[section] == demo[section], section
    assert example["data"]["domain"].endswith("domain_refs.jsonl")
    assert example["data"]["eval_path"].endswith("test_questions.jsonl")
    for key in ("val_fraction", "test_fraction"):
        assert example["data"][key] == demo["data"][key]
    assert DEMO_INSTRUCTION in EXAMPLE.read_text()
