"""model.head: probe: a classifier on mean-pooled features whose head starts as the linear probe (LP-FT)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from transformers import TrainerCallback

from tuneproof.evaluate._classify import fit_probe, predict_proba
from tuneproof.evaluate._loading import load_tuned
from tuneproof.models import load_model
from tuneproof.pooled import HEAD_FILE, PooledClassifier, probe_init
from tuneproof.train import train
from tuneproof.train.classification import encode_classification


def test_the_head_starts_as_the_probe_on_the_same_features(tiny_bert_dir, sentiment_rows):
    from tuneproof.data import load_records

    model, tok = load_model(tiny_bert_dir, "classification", labels=["neg", "pos"])
    pooled = PooledClassifier.from_sequence_classifier(model, None)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "rows.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in sentiment_rows(60)))
        records = load_records(path).records
    feats = [encode_classification(r, tok, 64, {"neg": 0, "pos": 1})[0] for r in records]
    info = probe_init(pooled, feats, tok.pad_token_id, seed=0)
    assert info["probe_records"] == 60
    texts = [str(r.text) for r in records]
    proba = predict_proba(pooled, tok, texts, max_length=64, batch_size=16)
    # the same probe, fit outside on the same frozen features, predicts the same probabilities
    import torch

    enc = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.inference_mode():
        x = pooled.pooled(enc["input_ids"], enc["attention_mask"]).numpy()
    probe = fit_probe(x, np.array([f["labels"] for f in feats]), 2, 0)
    np.testing.assert_allclose(proba, probe.predict_proba(x), atol=1e-4)


class Scores(TrainerCallback):
    """The trained model's class probabilities at the end of training (after the best checkpoint is restored)."""

    def __init__(self, tok, texts):
        self.tok, self.texts = tok, texts

    def on_train_end(self, args, state, control, model=None, **kw):
        self.proba = predict_proba(model, self.tok, self.texts, max_length=64, batch_size=8)


@pytest.mark.parametrize("method", ["full", "lora", "freeze"])
def test_a_probe_headed_classifier_trains_saves_and_loads_back(tiny_bert_dir, make_config, sentiment_rows, method):
    cfg = make_config(tiny_bert_dir, task="classification", rows=sentiment_rows(40),
                      model={"method": method, "trainable_blocks": 1})  # fmt: skip
    texts = [r["text"] for r in sentiment_rows(20, seed=3)]
    scores = Scores(load_model(tiny_bert_dir, "classification", num_labels=2)[1], texts)
    result = train(cfg, callbacks=[scores])
    assert result.data["head"] == "probe" and 0.0 <= result.data["probe_train_accuracy"] <= 1.0
    head = json.loads((result.model_dir / HEAD_FILE).read_text())
    assert head["pooling"] == "mean" and head["num_labels"] == 2
    assert json.loads((result.model_dir / "labels.json").read_text()) == ["neg", "pos"]
    # evaluate loads what training kept: the same probabilities as the model at the end of training
    model, tok = load_tuned(result.model_dir, tiny_bert_dir, "classification", labels=["neg", "pos"])
    proba = predict_proba(model, tok, texts, max_length=64, batch_size=8)
    np.testing.assert_allclose(proba, scores.proba, atol=1e-5)


def test_head_model_keeps_the_architectures_own_head(tiny_bert_dir, make_config, sentiment_rows):
    result = train(make_config(tiny_bert_dir, task="classification", rows=sentiment_rows(40),
                               model={"method": "full", "head": "model"}))  # fmt: skip
    assert not (result.model_dir / HEAD_FILE).exists() and "head" not in result.data
    assert json.loads((result.model_dir / "config.json").read_text())["architectures"] == ["BertForSequenceClassification"]
