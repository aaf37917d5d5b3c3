"""OverfitGuard: flag the evaluation where validation loss turns up while training loss falls.

The rule lives in :func:`check_overfitting`, a pure function of the loss curves, so it can
be tested on synthetic curves; :class:`OverfitGuard` is the Trainer callback that feeds it
the losses at each evaluation, warns once in the terminal, and keeps the findings.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from transformers import TrainerCallback

__all__ = ["EvalPoint", "GuardFindings", "OverfitGuard", "check_overfitting"]


@dataclass(frozen=True)
class EvalPoint:
    """Losses at one evaluation: ``train_loss`` is the mean training loss since the previous one."""

    step: int
    train_loss: float
    val_loss: float

    @property
    def gap(self) -> float:
        return self.val_loss - self.train_loss


@dataclass
class GuardFindings:
    """What the guard saw; ``overfitting`` is True once a rule fired (and stays True)."""

    overfitting: bool = False
    reason: str = ""
    rule: str = ""  # "rising_val_loss" or "gap"
    # The lowest validation loss up to the detection (over every evaluation when clean); the
    # training may go on and find a better one, which is the train result's best_step.
    best_step: int | None = None
    best_val_loss: float | None = None
    detected_step: int | None = None
    gap: float | None = None  # val - train at detection (or at the last evaluation when clean)
    gap_at_first_eval: float | None = None
    evaluations: int = 0
    curve: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_overfitting(points: list[EvalPoint], *, patience: int, max_gap_increase: float) -> GuardFindings:
    """Apply the guard's two rules to the evaluations so far.

    1. ``rising_val_loss``: validation loss rose at each of the last ``patience``
       evaluations while training loss fell over the same evaluations.
    2. ``gap``: the gap ``val - train`` has grown by more than ``max_gap_increase`` since
       the first evaluation, and validation loss has stalled: none of the last ``patience``
       evaluations beat the best before them. A gap that grows while validation loss still
       improves is the ordinary generalization gap (the first evaluation's training loss
       also averages the untrained first steps, so the gap starts low), not overfitting.

    The first evaluation at which a rule holds is the detection step.

    Example:
        >>> pts = [EvalPoint(s, t, v) for s, t, v in [(1, 2.0, 2.1), (2, 1.5, 2.0), (3, 1.0, 2.2), (4, 0.5, 2.4)]]
        >>> check_overfitting(pts, patience=2, max_gap_increase=5).detected_step
        4
    """
    findings = GuardFindings(evaluations=len(points))
    findings.curve = [asdict(p) for p in points]
    if not points:
        return findings
    findings.gap_at_first_eval = points[0].gap
    for i, p in enumerate(points):
        best = min(points[: i + 1], key=lambda q: q.val_loss)
        findings.best_step, findings.best_val_loss, findings.gap = best.step, best.val_loss, p.gap
        rule = _rule_at(points[: i + 1], patience, max_gap_increase)
        if rule:
            findings.overfitting, findings.rule, findings.detected_step = True, rule[0], p.step
            findings.reason = rule[1]
            break
    else:
        best = min(points, key=lambda q: q.val_loss)
        findings.best_step, findings.best_val_loss, findings.gap = best.step, best.val_loss, points[-1].gap
    return findings


def _rule_at(points: list[EvalPoint], patience: int, max_gap_increase: float) -> tuple[str, str] | None:
    last = points[-1]
    if len(points) > patience:
        window = points[-(patience + 1) :]
        val_rising = all(b.val_loss > a.val_loss for a, b in zip(window, window[1:]))
        train_falling = window[-1].train_loss < window[0].train_loss
        if val_rising and train_falling:
            return "rising_val_loss", (
                f"validation loss rose {patience} evaluation(s) in a row (to {last.val_loss:.4f} at step "
                f"{last.step}) while training loss fell to {last.train_loss:.4f}"
            )
    growth = last.gap - points[0].gap
    if growth > max_gap_increase and _val_stalled(points, patience):
        return "gap", (
            f"the gap between validation and training loss grew by {growth:.3f} (from {points[0].gap:.3f} to "
            f"{last.gap:.3f}) by step {last.step}, more than the allowed {max_gap_increase:g}"
        )
    return None


def _val_stalled(points: list[EvalPoint], patience: int) -> bool:
    if len(points) <= patience:
        return False
    return min(p.val_loss for p in points[-patience:]) >= min(p.val_loss for p in points[:-patience])


class OverfitGuard(TrainerCallback):
    """Trainer callback: check the curves at each evaluation; warn once when overfitting starts.

    Args:
        patience, max_gap_increase: see :func:`check_overfitting`.
        warn: called with a message when the guard fires (e.g. a rich console's print).
        on_fire: called with the findings when the guard fires (e.g. to set an MLflow tag).
    """

    def __init__(self, patience: int = 2, max_gap_increase: float = 0.5, warn: Any = None, on_fire: Any = None):
        self.patience = patience
        self.max_gap_increase = max_gap_increase
        self.warn = warn
        self.on_fire = on_fire
        self.findings = GuardFindings()
        self._warned = False

    def points(self, log_history: list[dict[str, Any]]) -> list[EvalPoint]:
        """Evaluation points from the Trainer's log history (which a resumed run restores)."""
        out: list[EvalPoint] = []
        window: list[float] = []
        for entry in log_history:
            if "loss" in entry and "eval_loss" not in entry:
                window.append(float(entry["loss"]))
            elif "eval_loss" in entry:
                if window and math.isfinite(entry["eval_loss"]):
                    out.append(EvalPoint(int(entry["step"]), sum(window) / len(window), float(entry["eval_loss"])))
                window = []
        return out

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **kw: Any):
        history = list(state.log_history)
        if metrics and "eval_loss" in metrics and not any(
            e.get("step") == state.global_step and "eval_loss" in e for e in history
        ):
            # on_evaluate runs before the Trainer appends this evaluation to the history.
            history.append({"step": state.global_step, "eval_loss": metrics["eval_loss"]})
        self.findings = check_overfitting(
            self.points(history), patience=self.patience, max_gap_increase=self.max_gap_increase
        )
        if self.findings.overfitting and not self._warned:
            self._warned = True
            if self.warn:
                self.warn(
                    f"overfitting at step {self.findings.detected_step}: {self.findings.reason}. "
                    f"Validation loss was lowest at step {self.findings.best_step}."
                )
            if self.on_fire:
                self.on_fire(self.findings)
