"""Sampler, pruner and the Trainer callback that reports validation loss to a trial."""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from tuneproof.config import SearchConfig

__all__ = ["OptunaPruningCallback", "make_pruner", "make_sampler"]


def make_sampler(search: SearchConfig, seed: int) -> Any:
    """Seeded TPE (or random) sampler."""
    import optuna

    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # Few startup trials: our studies are short (a dozen trials), and TPE needs some random ones first.
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(5, max(2, search.n_trials // 3)))


def make_pruner(search: SearchConfig, *, min_resource: int, max_resource: int | None) -> Any:
    """Hyperband (or median) on training steps, wrapped in PatientPruner.

    Validation curves are noisy; a bare pruner cuts a trial at its first bad evaluation
    (optuna#1447), so the wrapped pruner is asked only once the trial's best loss of its
    last ``patience + 1`` evaluations is worse than its best before them. Resources are training steps; ``max_resource=None`` lets Hyperband take
    the first finished trial's step count.
    """
    import optuna

    if search.pruner == "none":
        return optuna.pruners.NopPruner()
    if search.pruner == "median":
        inner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=min_resource)
    else:
        inner = optuna.pruners.HyperbandPruner(
            min_resource=max(1, min_resource),
            max_resource="auto" if max_resource is None else max(max_resource, min_resource + 1),
            reduction_factor=3,
        )
    return optuna.pruners.PatientPruner(inner, patience=search.pruner_patience)


class OptunaPruningCallback(TrainerCallback):
    """Reports ``eval_loss`` to an Optuna trial at each evaluation and prunes on its verdict.

    Raising :class:`optuna.TrialPruned` from ``on_evaluate`` ends ``trainer.train()`` at
    once; the objective lets it through, so Optuna records the trial as pruned.

    Args:
        trial: the Optuna trial, or ``None`` on a non-zero rank of a distributed trial (it
            then receives rank 0's verdict).
        decide: a function ``(should_prune: bool | None) -> bool`` that shares rank 0's
            verdict with every rank; identity when not distributed.
    """

    def __init__(self, trial: Any, decide: Any = None, step_scale: float = 1.0) -> None:
        self.trial = trial
        self.decide = decide or (lambda verdict: bool(verdict))
        self.step_scale = step_scale  # reports in steps at the config's batch size (equal examples)
        self.reported: list[tuple[int, float]] = []
        self.seen: set[int] = set()
        self.last_step: int | None = None

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **kw: Any) -> None:
        import optuna

        verdict = None
        # The engine evaluates once more after training (same step): report each step once.
        # Every rank sees the same steps, so every rank skips the same ones.
        if state.global_step in self.seen:
            return
        self.seen.add(state.global_step)
        self.last_step = state.global_step  # the trial's own step (the pruner sees ``step``)
        step = max(1, round(state.global_step * self.step_scale))
        if self.trial is not None and metrics and "eval_loss" in metrics and all(s != step for s, _ in self.reported):
            loss = float(metrics["eval_loss"])
            self.trial.report(loss, step)
            self.reported.append((step, loss))
            verdict = self.trial.should_prune()
        if self.decide(verdict):
            raise optuna.TrialPruned(f"pruned at step {state.global_step}")
