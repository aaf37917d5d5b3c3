"""Classification: the linear probe is the reference; the raw base head is seeded."""

from __future__ import annotations

import json

import pytest
from eval_helpers import sentiment_rows, train_classifier, write_jsonl

from tuneproof.evaluate import evaluate

LABELS = ["neg", "pos"]


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory, tiny_bert_dir):
    root = tmp_path_factory.mktemp("sentiment")
    train_rows = sentiment_rows(40, seed=0)
    train = write_jsonl(root / "train.jsonl", train_rows)
    test = write_jsonl(root / "test.jsonl", sentiment_rows(40, seed=1))
    tuned = train_classifier(tiny_bert_dir, train_rows, LABELS, root / "tuned")
    return {"train": train, "test": test, "tuned": tuned}


def test_probe_is_the_reference(tiny_bert_dir, sentiment, tmp_path):
    r = evaluate(tiny_bert_dir, sentiment["tuned"], sentiment["test"], tmp_path, task="classification",
                 train=sentiment["train"])  # fmt: skip
    assert r.reference == "probe"
    assert set(r.metrics) == {"base", "probe", "tuned"}
    assert set(r.metrics["probe"]) == {"accuracy", "macro_f1", "auroc"}
    # The verdict's delta is tuned minus the probe, not minus the raw base.
    assert r.delta.reference == pytest.approx(r.metrics["probe"]["accuracy"])
    assert r.delta.value == pytest.approx(r.metrics["tuned"]["accuracy"] - r.metrics["probe"]["accuracy"])
    probe = r.details["probe"]
    assert probe["n_train"] == 40 and probe["pooling"] == "mean of last hidden state"
    # The words separate the classes, so a probe fit on frozen embeddings learns them.
    assert probe["train_accuracy"] > 0.9
    assert r.metrics["probe"]["accuracy"] > 0.75
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["reference"] == "probe" and saved["forgetting"]["status"] == "not_applicable"
    rows = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert len(rows) == 40 and set(rows[0]["predicted"]) == {"base", "probe", "tuned"}


def test_raw_base_scores_are_identical_across_loads(tiny_bert_dir, sentiment, tmp_path):
    kwargs = dict(task="classification", train=sentiment["train"])
    a = evaluate(tiny_bert_dir, sentiment["tuned"], sentiment["test"], tmp_path / "a", **kwargs)
    b = evaluate(tiny_bert_dir, sentiment["tuned"], sentiment["test"], tmp_path / "b", **kwargs)
    assert a.metrics == b.metrics
    rows_a = (tmp_path / "a" / "records.jsonl").read_text()
    assert rows_a == (tmp_path / "b" / "records.jsonl").read_text()


@pytest.mark.parametrize("metric", ["macro_f1", "auroc"])
def test_other_primary_metrics(tiny_bert_dir, sentiment, tmp_path, metric):
    r = evaluate(tiny_bert_dir, sentiment["tuned"], sentiment["test"], tmp_path, task="classification",
                 train=sentiment["train"], metric=metric)  # fmt: skip
    assert r.metric == metric
    assert r.delta.value == pytest.approx(r.metrics["tuned"][metric] - r.metrics["probe"][metric])
    assert r.delta.ci_low <= r.delta.value <= r.delta.ci_high


def test_untrained_model_regresses_against_the_probe(tiny_bert_dir, sentiment, tmp_path):
    # "Tuned" = the base with a fresh seeded head: near chance, while the probe separates the classes.
    untrained = train_classifier(tiny_bert_dir, sentiment_rows(4), LABELS, tmp_path / "untrained", steps=0)
    r = evaluate(tiny_bert_dir, untrained, sentiment["test"], tmp_path / "eval", task="classification",
                 train=sentiment["train"])  # fmt: skip
    assert r.verdict == "regressed", r.verdict_reason
