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
    # Val loss flat (never rises twice) but training loss collapses: the gap rule catches it.
    points = curve((1, 2.0, 2.0), (2, 1.5, 1.9), (3, 1.0, 1.95), (4, 0.5, 1.9), (5, 0.2, 1.92))
    f = check_overfitting(points, patience=3, max_gap_increase=1.0)
    assert f.overfitting and f.rule == "gap"
    assert f.detected_step == 4 and f.gap_at_first_eval == pytest.approx(0.0)
    assert "grew by 1.400" in f.reason


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
