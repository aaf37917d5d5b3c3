"""Helpers for the evaluation tests: pattern data and tiny models trained in seconds."""

from __future__ import annotations

import json
from pathlib import Path

WORDS = (
    "apple river stone cloud tiger lamp violin garden window rocket pencil forest "
    "candle bridge mirror planet harbor saddle thunder velvet meadow cactus anchor "
    "beacon cobalt dune ember falcon glacier hazel island jasmine kettle lantern "
    "marble nectar orchid pepper quartz raven summit tulip umber valley willow"
).split()


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def pattern_rows(words: list[str]) -> list[dict]:
    """Every prompt gets the same answer: a pattern a tiny model fits in a few dozen steps."""
    return [{"prompt": f"Where is the {w}?", "completion": "in Paris", "answers": ["in Paris", "Paris"]} for w in words]


def sentiment_rows(n: int, seed: int = 0) -> list[dict]:
    import random

    rng = random.Random(seed)
    good, bad = ["wonderful", "moving", "funny"], ["dull", "slow", "long"]
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        words = rng.sample(good if label == "pos" else bad, 2) + rng.sample(WORDS, 3)
        rng.shuffle(words)
        rows.append({"text": "this film was " + " ".join(words), "label": label})
    return rows


def train_sft(base_dir: Path, rows: list[dict], out: Path, *, steps: int = 40, lr: float = 3e-3, lora: bool = False) -> Path:
    """Fit the completions with a plain AdamW loop (loss on completion tokens only); save."""
    import torch

    from tuneproof.data import Record, Schema
    from tuneproof.evaluate import encode_example, sft_examples
    from tuneproof.models import load_model

    model, tok = load_model(base_dir, "sft")
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    records = [Record(f"train:{i}", Schema.PROMPT_COMPLETION, {"prompt": r["prompt"], "completion": r["completion"]}) for i, r in enumerate(rows)]
    encoded = [encode_example(tok, ex, 128) for ex in sft_examples(records, "train")]
    width = max(len(ids) for ids, _, _ in encoded)
    ids = torch.full((len(encoded), width), tok.pad_token_id)
    labels = torch.full((len(encoded), width), -100)
    mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for i, (seq, n_prompt, _) in enumerate(encoded):
        ids[i, : len(seq)] = torch.tensor(seq)
        labels[i, n_prompt : len(seq)] = torch.tensor(seq[n_prompt:])
        mask[i, : len(seq)] = 1
    return _fit(model, tok, {"input_ids": ids, "attention_mask": mask, "labels": labels}, out, steps, lr)


def train_text(base_dir: Path, texts: list[str], out: Path, *, steps: int = 40, lr: float = 3e-3) -> Path:
    """Language-model a few plain texts, so that the model knows them (a 'general' base)."""
    from tuneproof.models import load_model

    model, tok = load_model(base_dir, "sft")
    enc = tok(texts, padding=True, return_tensors="pt")
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}
    return _fit(model, tok, batch, out, steps, lr)


def _fit(model, tok, batch: dict, out: Path, steps: int, lr: float) -> Path:
    import torch

    torch.manual_seed(0)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def damage(model_dir: Path, out: Path, scale: float, seed: int = 0) -> Path:
    """Copy a model with Gaussian noise (``scale`` times each tensor's std) added to every weight."""
    import torch

    from tuneproof.models import load_model

    model, tok = load_model(model_dir, "sft")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * p.std() * scale)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def train_classifier(base_dir: Path, rows: list[dict], labels: list[str], out: Path, *, steps: int = 30) -> Path:
    import torch

    from tuneproof.models import load_model

    model, tok = load_model(base_dir, "classification", labels=labels, seed=0)
    enc = tok([r["text"] for r in rows], padding=True, return_tensors="pt")
    enc.pop("token_type_ids", None)
    y = torch.tensor([labels.index(r["label"]) for r in rows])
    return _fit(model, tok, {**enc, "labels": y}, out, steps, 3e-3)
