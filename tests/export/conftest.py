"""Run folders as `tuneproof run` leaves them, built in seconds from the tiny models.

The pipeline's own stages write each file (config.yaml, split/, train/model, evaluate/,
decision.json, report.json); only the training loop is the evaluation tests' short one,
because the pipeline's Trainer-based stage costs ~15 s even for a few steps.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluate"))
from eval_helpers import WORDS, pattern_rows, sentiment_rows, train_sft, write_jsonl  # noqa: E402


def _finish(cfg, run_dir: Path, tuned: Path, test: Path, train: Path | None) -> Path:
    """Evaluate, decide and report as the pipeline's last stages do."""
    from rich.console import Console

    from tuneproof.evaluate import evaluate
    from tuneproof.pipeline._run import Ctx, run_decision, run_report

    evaluate(cfg.model.name, tuned, test, run_dir / "evaluate", task=cfg.task, config=cfg.eval, train=train,
             labels=cfg.model.labels, max_length=cfg.model.max_length)  # fmt: skip
    ctx = Ctx(cfg, Console(quiet=True))
    run_decision(ctx)
    run_report(ctx)
    return run_dir


def _start(root: Path, raw: dict):
    from tuneproof.config import load_config

    cfg = load_config({**raw, "tracking": {"runs_dir": str(root)}})
    cfg.run_dir.mkdir(parents=True)
    (cfg.run_dir / "config.yaml").write_text(cfg.to_yaml())
    (cfg.run_dir / "split").mkdir()
    return cfg


@pytest.fixture(scope="session")
def sft_run(tiny_llama_dir, tmp_path_factory) -> Path:
    """A LoRA run on the tiny Llama that learned "in Paris" and shipped (the base never says it)."""
    root = tmp_path_factory.mktemp("runs")
    train = write_jsonl(root / "train.jsonl", pattern_rows(WORDS[:24]))
    cfg = _start(root, {"name": "qa", "task": "sft", "data": {"path": str(train)},
                        "model": {"name": str(tiny_llama_dir), "max_length": 64, "method": "lora"},
                        "eval": {"metric": "token_f1", "max_new_tokens": 4}})  # fmt: skip
    test = write_jsonl(cfg.run_dir / "split" / "test.jsonl", pattern_rows(WORDS[24:34]))
    rows = [json.loads(line) for line in train.read_text().splitlines()]
    tuned = train_sft(tiny_llama_dir, rows, cfg.run_dir / "train" / "model", steps=30, lora=True)
    return _finish(cfg, cfg.run_dir, tuned, test, None)


@pytest.fixture(scope="session")
def classify_run(tiny_bert_dir, tmp_path_factory) -> Path:
    """A LoRA fine-tune (the default method) of the tiny BERT on pos/neg sentences."""
    root = tmp_path_factory.mktemp("runs")
    rows = sentiment_rows(48)
    train = write_jsonl(root / "train.jsonl", rows[:36])
    cfg = _start(root, {"name": "sent", "task": "classification", "data": {"path": str(train)},
                        "model": {"name": str(tiny_bert_dir), "max_length": 32, "method": "lora", "labels": ["neg", "pos"]}})  # fmt: skip
    test = write_jsonl(cfg.run_dir / "split" / "test.jsonl", rows[36:])
    tuned = _train_lora_classifier(cfg, rows[:36], cfg.run_dir / "train" / "model")
    return _finish(cfg, cfg.run_dir, tuned, test, train)


def _train_lora_classifier(cfg, rows: list[dict], out: Path, steps: int = 30) -> Path:
    """A LoRA classifier as the training engine builds it (adapters plus the new head), fit by a short AdamW loop."""
    import torch

    from tuneproof.models import load_model
    from tuneproof.train._model import prepare_model

    labels = cfg.model.labels
    model, tok = load_model(cfg.model.name, "classification", labels=labels, seed=0)
    model = prepare_model(model, cfg.model, "classification")
    enc = tok([r["text"] for r in rows], padding=True, return_tensors="pt")
    enc.pop("token_type_ids", None)
    y = torch.tensor([labels.index(r["label"]) for r in rows])
    torch.manual_seed(0)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(steps):
        model(**enc, labels=y).loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "labels.json").write_text(json.dumps(labels))
    return out
