"""Metric functions against values worked out by hand (and, where it exists, sklearn)."""

from __future__ import annotations

import numpy as np
import pytest

from tuneproof.evaluate import (
    accuracy,
    auroc,
    exact_match,
    label_accuracy,
    macro_f1,
    normalize_answer,
    rouge_l,
    token_f1,
)


def test_normalize_answer_follows_squad():
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("An apple, a day.") == "apple day"


def test_exact_match_against_any_reference():
    assert exact_match("the Paris.", ["Paris"]) == 1.0
    assert exact_match("Rome", ["Paris", "London"]) == 0.0
    assert exact_match("london", ["Paris", "London"]) == 1.0
    assert exact_match("Paris, France", "Paris") == 0.0


def test_token_f1_by_hand():
    # pred {in, paris, france} vs {paris}: precision 1/3, recall 1 -> F1 = 2(1/3)/(4/3) = 0.5
    assert token_f1("in Paris France", "Paris") == pytest.approx(0.5)
    # best of the references: {paris, france} -> precision 2/3, recall 1 -> F1 = 0.8
    assert token_f1("in Paris France", ["London", "Paris France"]) == pytest.approx(0.8)
    assert token_f1("nothing shared", "Paris") == 0.0
    assert token_f1("", "") == 1.0 and token_f1("", "Paris") == 0.0


def test_rouge_l_by_hand():
    # LCS of "the cat sat on the mat" / "the cat was on the mat" is 5 of 6 words each way.
    assert rouge_l("the cat sat on the mat", "the cat was on the mat") == pytest.approx(5 / 6)
    assert rouge_l("completely different", ["the cat", "different"]) == pytest.approx(2 * 0.5 * 1 / 1.5)


def test_label_accuracy_reads_the_leading_label():
    labels = ["positive", "negative", "not sure"]
    assert label_accuracy("Positive, clearly.", "positive", labels) == 1.0
    assert label_accuracy("negative", "positive", labels) == 0.0
    assert label_accuracy("I think it is positive", "positive", labels) == 0.0  # must lead
    assert label_accuracy("Not sure at all", ["not sure"], labels) == 1.0


def test_accuracy_and_macro_f1_by_hand():
    y, p = np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 1, 0])
    assert accuracy(y, p)[0] == pytest.approx(3 / 5)
    # class 0: tp1 fp1 fn1 -> 0.5; class 1: tp2 fp1 fn0 -> 0.8; class 2: tp0 fn1 -> 0
    assert macro_f1(y, p, 3)[0] == pytest.approx((0.5 + 0.8 + 0.0) / 3)


def test_auroc_by_hand_with_ties():
    # positives 0.35 (beats 0.1, loses to 0.4) and 0.8 (beats both): 3 of 4 pairs
    assert auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))[0] == pytest.approx(0.75)
    assert auroc(np.array([0, 1]), np.array([0.5, 0.5]))[0] == pytest.approx(0.5)
    assert np.isnan(auroc(np.array([1, 1]), np.array([0.2, 0.3]))[0])


def test_weighted_metrics_equal_sklearn_on_repeated_rows():
    from sklearn.metrics import f1_score, roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    score = np.round(rng.random(60) * 0.6 + y * 0.3, 2)  # rounded: some ties
    pred = (score > 0.5).astype(int)
    counts = rng.integers(0, 4, 60)
    rep = np.repeat(np.arange(60), counts)  # the same sample, written out row by row
    assert auroc(y, score, counts)[0] == pytest.approx(roc_auc_score(y[rep], score[rep]))
    assert macro_f1(y, pred, 2, counts)[0] == pytest.approx(f1_score(y[rep], pred[rep], average="macro"))
    assert accuracy(y, pred, counts)[0] == pytest.approx(np.mean(y[rep] == pred[rep]))


def test_the_probe_ignores_a_dimension_whose_spread_is_float_rounding():
    from tuneproof.evaluate._classify import fit_probe

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    x = rng.normal(size=(200, 6)) + y[:, None] * 0.3
    # a near-constant dimension (as MiniLM's mean-pooled output has): its values are rounding
    # noise; standardised, it would be a unit-variance feature, here one that leaks the label
    x = np.hstack([x, (y * 1e-31 + rng.normal(scale=1e-33, size=200))[:, None]])
    probe = fit_probe(x, y, 2, seed=0)
    assert probe[0].get_support().tolist() == [True] * 6 + [False]
    shuffled = x.copy()
    shuffled[:, -1] = rng.permutation(shuffled[:, -1])
    np.testing.assert_allclose(probe.predict_proba(shuffled), probe.predict_proba(x))


def test_the_probe_on_identical_embeddings_is_a_clear_error():
    from tuneproof.errors import DataError
    from tuneproof.evaluate._classify import fit_probe

    with pytest.raises(DataError, match="identical in every dimension"):
        fit_probe(np.ones((10, 4)), np.array([0, 1] * 5), 2, seed=0)
