"""The overfitting guard's rules on synthetic loss curves, and its reading of Trainer logs."""

from __future__ import annotations

import pytest

from tuneproof.train import EvalPoint, OverfitGuard, check_overfitting


def curve(*triples):
    return [EvalPoint(step, train, val) for step, train, val in triples]


def test_fires_when_val_rises_k_times_while_train_falls():
    points = curve((10, 2.0, 2.2), (20, 1.6, 1.9), (30, 1.2, 1.8), (40, 0.9, 1.85), (50, 0.6, 1.95), (60, 0.4, 2.1))
    f = check_overfitting(points, patience=2, max_gap_increase=10)
    assert f.overfitting and f.rule == "rising_val_loss"
    assert f.best_step == 30 and f.best_val_loss == pytest.approx(1.8)
    assert f.detected_step == 50  # two rises in a row: 30->40->50
    assert f.gap == pytest.approx(1.95 - 0.6)


def test_silent_on_healthy_curve():
    points = curve((10, 2.0, 2.1), (20, 1.7, 1.8), (30, 1.5, 1.65), (40, 1.4, 1.55), (50, 1.35, 1.5))
    f = check_overfitting(points, patience=2, max_gap_increase=0.5)
    assert not f.overfitting and f.detected_step is None and f.reason == ""
    assert f.best_step == 50 and f.evaluations == 5


def test_val_rise_with_train_rise_is_not_overfitting():
    # Both losses go up: a too-high learning rate, not memorization.
    points = curve((1, 1.0, 1.1), (2, 1.2, 1.3), (3, 1.4, 1.5), (4, 1.6, 1.7))
    assert not check_overfitting(points, patience=2, max_gap_increase=0.5).overfitting


def test_single_noisy_rise_is_tolerated():
    points = curve((1, 2.0, 2.0), (2, 1.8, 1.9), (3, 1.7, 1.95), (4, 1.6, 1.85), (5, 1.5, 1.9), (6, 1.45, 1.8))
    assert not check_overfitting(points, patience=2, max_gap_increase=0.5).overfitting


def test_fires_when_gap_grows_past_threshold():
    # Val loss flat (never rises twice) but training loss collapses: the gap rule catches it
    # once the last 3 evaluations no longer beat the best before them (step 5, not step 4).
    points = curve((1, 2.0, 2.0), (2, 1.5, 1.9), (3, 1.0, 1.95), (4, 0.5, 1.9), (5, 0.2, 1.92))
    f = check_overfitting(points, patience=3, max_gap_increase=1.0)
    assert f.overfitting and f.rule == "gap"
    assert f.detected_step == 5 and f.gap_at_first_eval == pytest.approx(0.0)
    assert "grew by 1.720" in f.reason


def test_a_growing_gap_while_val_loss_still_improves_is_not_overfitting():
    # The curve of a real SmolLM2 LoRA run (outcome benchmark, qa): the first window's training
    # loss averages the untrained first steps, so the gap starts at -0.59 and "grows" by 0.68
    # while validation loss falls at almost every evaluation. The old rule flagged step 6.
    points = curve((2, 4.2425, 3.6539), (4, 3.5670, 3.3859), (6, 3.1914, 3.2849), (8, 2.8407, 3.1239),
                   (10, 3.7925, 3.0436), (12, 3.5522, 3.0239), (14, 3.0472, 3.0286), (16, 2.7463, 3.0198),
                   (18, 2.7987, 2.9945), (20, 2.7919, 2.9643), (22, 3.2594, 2.9447), (24, 3.1235, 2.9460),
                   (26, 2.5645, 2.9417), (28, 2.7467, 2.9343))  # fmt: skip
    f = check_overfitting(points, patience=2, max_gap_increase=0.5)
    assert not f.overfitting and f.best_step == 28
    # ... but once validation loss stalls and the gap keeps growing, it fires
    later = points + curve((30, 2.3, 2.95), (32, 2.1, 2.97))
    f = check_overfitting(later, patience=2, max_gap_increase=0.5)
    assert f.overfitting and f.detected_step == 32


def test_guard_reads_trainer_log_history():
    history = [
        {"loss": 2.0, "step": 1}, {"loss": 1.0, "step": 2}, {"eval_loss": 1.8, "step": 2},
        {"loss": 0.8, "step": 3}, {"loss": 0.6, "step": 4}, {"eval_loss": 1.9, "step": 4},
        {"train_loss": 1.1, "step": 4},  # Trainer's end-of-run summary is not a step loss
    ]  # fmt: skip
    points = OverfitGuard().points(history)
    assert points == [EvalPoint(2, 1.5, 1.8), EvalPoint(4, 0.7, 1.9)]


def test_guard_warns_once_and_calls_on_fire():
    warnings, fired = [], []

    class State:
        global_step = 0
        log_history: list = []

    guard = OverfitGuard(patience=1, max_gap_increase=10, warn=warnings.append, on_fire=fired.append)
    state = State()
    for step, (train, val) in enumerate([(2.0, 1.9), (1.5, 2.0), (1.0, 2.1)], start=1):
        state.global_step = step
        state.log_history += [{"loss": train, "step": step}, {"eval_loss": val, "step": step}]
        guard.on_evaluate(None, state, None, metrics={"eval_loss": val})
    assert len(warnings) == 1 and "step 2" in warnings[0]
    assert len(fired) == 1 and fired[0].detected_step == 2
