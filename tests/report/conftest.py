"""A real run directory for the report tests, built by running the stages on a tiny Llama.

curate, lr_sweep, tune, train and evaluate really run (seconds each). The files that only
``tuneproof run`` writes (config.yaml, pipeline.json, preflight/preflight.json,
decision.json) are written here following the run-directory contract, because the pipeline
is built in another branch.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

SCRIPT = "<script>alert(1)</script>"
WORDS = "the capital of france is paris rome madrid water boils at one hundred degrees sun rises in east".split()
GENERAL = (
    "The capital of France is Paris, and the capital of Italy is Rome.\n\n"
    "Water boils at one hundred degrees. The sun rises in the east and sets in the west.\n\n"
    "Open the settings page and choose the reset option to change your password.\n"
)


def _rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [
        {"prompt": " ".join(rng.choice(WORDS) for _ in range(6)), "completion": " ".join(rng.choice(WORDS) for _ in range(3))}
        for _ in range(n)
    ]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# Flagged by the pii check but kept: its example text must come from the input file.
PII = {"prompt": "write to jane.doe@example.com about the capital of france", "completion": "paris is the capital"}
HOSTILE = {"prompt": f"{SCRIPT} what is <b>this</b>?", "completion": "<img src=x onerror=alert(2)> & more"}


@pytest.fixture(scope="session")
def run_dir(tiny_llama_dir, tmp_path_factory) -> Path:
    from tuneproof.audit import curate
    from tuneproof.audit.embed import HashingEmbedder
    from tuneproof.config import load_config
    from tuneproof.evaluate import evaluate
    from tuneproof.search import lr_sweep, tune
    from tuneproof.train import train

    root = tmp_path_factory.mktemp("report-run")
    rows = _rows(40, 0)
    data = _write_jsonl(root / "data.jsonl", rows + [rows[0]] * 3 + [PII, HOSTILE])
    # Four test records: every one is among the 5 largest wins or losses, the hostile one too.
    test = _write_jsonl(root / "test.jsonl", _rows(3, 1) + [HOSTILE])
    (root / "general.txt").write_text(GENERAL, encoding="utf-8")
    cfg = {
        "name": "t",
        "task": "sft",
        "data": {"path": str(data), "val_fraction": 0.2, "test_fraction": 0.0},
        "model": {"name": str(tiny_llama_dir), "max_length": 64},
        "train": {"batch_size": 4, "max_steps": 4, "eval_steps": 2, "bf16": False},
        "search": {"n_trials": 4, "pruner": "none"},
        "tracking": {"runs_dir": str(root / "runs")},
    }
    config = load_config(cfg)
    run = config.run_dir
    curate(data, out=run / "curate", embedder=HashingEmbedder(), progress=False)
    lr_sweep(cfg, lrs=[1e-5, 1e-3, 1e-1], steps=2)
    tune(cfg, n_trials=4)  # importances need 4
    train(cfg)
    # The curation A/B on a split of what curation kept (its last 8 records for validation).
    from tuneproof.pipeline._ab import curation_ab

    kept = (run / "curate" / "kept.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (run / "split").mkdir()
    for part, lines in (("train", kept[:-8]), ("val", kept[-8:]), ("test", test.read_text(encoding="utf-8").splitlines(True))):
        (run / "split" / f"{part}.jsonl").write_text("".join(lines), encoding="utf-8")
    curation_ab(config, run / "split", run / "curate", run / "curation_ab", steps=2, lr=1e-3, lr_source="a test rate")
    # The augmentation A/B: the tiny model's paraphrases (blank lines) are all rejected, and counted.
    from tuneproof.pipeline._augment import augmentation_ab

    augmentation_ab(load_config({**cfg, "augment": {"methods": ["paraphrase"], "max_length_ratio": 1.5}}), run / "split" / "train.jsonl",
                    run / "split" / "val.jsonl", run / "augment", steps=2, lr=1e-3, lr_source="a test rate")  # fmt: skip
    # The learning curve on the same split, at its smallest: one fraction below the full data, one seed.
    from tuneproof.pipeline._data_value import data_value

    data_value(load_config({**cfg, "pipeline": {"data_value": {"fractions": [0.5], "seeds": 1}}}), embedder=HashingEmbedder())
    evaluate(tiny_llama_dir, run / "train" / "model", test, run / "evaluate", max_length=64,
             forgetting_text=str(root / "general.txt"))  # fmt: skip
    # What `tuneproof run` adds (contract: /work/notes/run_layout.md).
    (run / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
    sha = hashlib.sha256(data.read_bytes()).hexdigest()
    stages = [{"name": n, "status": "done", "input_hash": "i" + n, "config_hash": "c" + n, "started": "2026-11-25T17:00:00",
               "seconds": 1.0, "outputs": [], "note": ""} for n in ("preflight", "audit", "curate", "lr_sweep", "tune", "train", "evaluate")]  # fmt: skip
    pipeline = {"stages": stages, "mlflow_parent_run_id": "parent123", "versions": {"torch": "9.9-test"}, "data_hashes": {str(data): sha}}
    (run / "pipeline.json").write_text(json.dumps(pipeline), encoding="utf-8")
    (run / "preflight").mkdir()
    preflight = {
        "estimates": {"train_tokens": 1152, "seconds": 7.0, "peak_memory_gb": 0.4, "tokens_per_second_assumed": 160},
        "min_detectable_effect": {"metric": "nll", "value": 0.21, "n_test": 4, "power": 0.8, "alpha": 0.05},
        "risks": [{"code": "too_few_examples", "level": "high", "evidence": "40 records after curation", "fix": "collect a few hundred"}],
    }
    (run / "preflight" / "preflight.json").write_text(json.dumps(preflight), encoding="utf-8")
    decision = {"ship": False, "verdict": "no_change", "headline": "not proven: do not ship", "model_path": None,
                "causes": [{"code": "test_too_small", "evidence": "4 test records; minimum detectable effect 0.21",
                            "next": "score on a few hundred test records"}]}  # fmt: skip
    (run / "decision.json").write_text(json.dumps(decision), encoding="utf-8")
    return run
