"""The paired bootstrap: seeded, vectorised, at about its nominal coverage; and the verdict rules."""

from __future__ import annotations

import numpy as np
import pytest

from tuneproof.evaluate import Delta, macro_f1, paired_bootstrap, paired_bootstrap_means, verdict


@pytest.mark.parametrize("confidence", [0.95, 0.80])
def test_interval_covers_the_true_difference_at_about_the_nominal_rate(confidence):
    # Records of varying difficulty (shared by both models), a true mean gain of 0.1 and
    # per-record noise: the case the paired bootstrap is for.
    rng = np.random.default_rng(123)
    true_diff, n, sims = 0.1, 200, 300
    covered = 0
    for s in range(sims):
        difficulty = rng.normal(0, 1, n)
        ref = difficulty
        tuned = difficulty + true_diff + rng.normal(0, 0.5, n)
        d = paired_bootstrap_means("m", ref, tuned, higher_is_better=True, confidence=confidence, seed=s)
        covered += d.ci_low <= true_diff <= d.ci_high
    rate = covered / sims
    # Binomial sd at 300 simulations is ~0.013 (95%) and ~0.023 (80%): allow about 3 sd.
    assert abs(rate - confidence) < (0.045 if confidence == 0.95 else 0.07), rate


def test_pairing_makes_the_interval_narrower_than_independent_noise():
    rng = np.random.default_rng(0)
    difficulty = rng.normal(0, 3, 300)
    ref, tuned = difficulty, difficulty + 0.2 + rng.normal(0, 0.1, 300)
    d = paired_bootstrap_means("m", ref, tuned, higher_is_better=True)
    assert d.ci_low > 0  # unpaired, the spread of difficulty (sd 3) would swamp a 0.2 gain


def test_seeded_and_reproducible():
    rng = np.random.default_rng(1)
    a, b = rng.random(80), rng.random(80)
    d1 = paired_bootstrap_means("m", a, b, higher_is_better=True, seed=7)
    d2 = paired_bootstrap_means("m", a, b, higher_is_better=True, seed=7)
    d3 = paired_bootstrap_means("m", a, b, higher_is_better=True, seed=8)
    assert (d1.ci_low, d1.ci_high) == (d2.ci_low, d2.ci_high)
    assert (d1.ci_low, d1.ci_high) != (d3.ci_low, d3.ci_high)
    assert d1.value == pytest.approx(b.mean() - a.mean())


def test_non_mean_statistic_uses_the_same_resamples():
    y = np.array([0, 1, 1, 0, 1, 0, 1, 1, 0, 0] * 5)
    worse, better = y.copy(), y.copy()
    worse[::3] = 1 - worse[::3]
    d = paired_bootstrap(
        "macro_f1", lambda w: macro_f1(y, worse, 2, w), lambda w: macro_f1(y, better, 2, w), len(y),
        higher_is_better=True,
    )  # fmt: skip
    assert d.tuned == 1.0 and d.reference == pytest.approx(macro_f1(y, worse, 2)[0])
    assert d.ci_low > 0


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="at least 1000"):
        paired_bootstrap_means("m", np.zeros(5), np.zeros(5), higher_is_better=True, resamples=100)
    with pytest.raises(ValueError, match="empty"):
        paired_bootstrap_means("m", np.zeros(0), np.zeros(0), higher_is_better=True)
    with pytest.raises(ValueError, match="equal length"):
        paired_bootstrap_means("m", np.zeros(3), np.zeros(4), higher_is_better=True)


def _delta(value, low, high, higher=True):
    return Delta("m", 0.0, value, value, low, high, 0.95, 1000, 0, higher)


def test_verdict_rules():
    assert verdict(_delta(0.2, 0.1, 0.3))[0] == "improved"
    assert verdict(_delta(0.2, 0.1, 0.3), min_effect=0.25)[0] == "no_change"
    assert verdict(_delta(0.0, -0.1, 0.1))[0] == "no_change"
    assert verdict(_delta(-0.2, -0.3, -0.1))[0] == "regressed"
    # lower is better (NLL): a negative delta is an improvement
    assert verdict(_delta(-0.2, -0.3, -0.1, higher=False))[0] == "improved"
    assert verdict(_delta(0.2, 0.1, 0.3, higher=False))[0] == "regressed"
    assert verdict(_delta(float("nan"), float("nan"), float("nan")))[0] == "no_change"


def test_mean_fast_path_agrees_with_the_general_count_path():
    rng = np.random.default_rng(5)
    a, b = rng.random(400), rng.random(400) + 0.03
    fast = paired_bootstrap_means("m", a, b, higher_is_better=True, resamples=4000)
    general = paired_bootstrap(
        "m", lambda w: (w @ a) / w.sum(1), lambda w: (w @ b) / w.sum(1), 400, higher_is_better=True, resamples=4000
    )
    assert fast.value == pytest.approx(general.value)
    width = general.ci_high - general.ci_low
    assert abs(fast.ci_low - general.ci_low) < 0.1 * width
    assert abs(fast.ci_high - general.ci_high) < 0.1 * width
