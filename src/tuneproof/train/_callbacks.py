"""Trainer callbacks of our own: MLflow logging into one run, and a rich progress bar."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from transformers import TrainerCallback

from tuneproof import track
from tuneproof._ticker import INTERVAL, Ticker, eta

__all__ = ["MlflowLogger", "RichProgress"]

# Trainer log keys -> the metric names we log.
_RENAME = {"loss": "train_loss", "learning_rate": "lr", "eval_loss": "val_loss"}
_SKIP = {"total_flos", "train_runtime", "train_samples_per_second", "train_steps_per_second",
         "eval_runtime", "eval_samples_per_second", "eval_steps_per_second"}  # fmt: skip


class MlflowLogger(TrainerCallback):
    """Log every Trainer log entry to one MLflow run, by id.

    Unlike transformers' ``MLflowCallback``, it never starts or ends a run, so a
    ``trainer.evaluate()`` after ``train()`` lands in the same run.
    """

    def __init__(self, run: track.TrackedRun):
        self.run = run

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any):
        if not logs:
            return
        # "train_loss" is the run-average that Trainer logs once at the end; "loss" is per step.
        metrics = {
            ("train_loss_mean" if k == "train_loss" else _RENAME.get(k, k)): v
            for k, v in logs.items()
            if k not in _SKIP
        }
        track.log_metrics(self.run, metrics, step=state.global_step)


class RichProgress(TrainerCallback):
    """One rich progress bar over the training steps, showing the last train and val loss.

    A bar draws only on a terminal: on any other console (a pipe, a log file) a plain line
    with the step, the losses and the time left is printed at most every ``interval`` seconds.
    """

    def __init__(self, console: Any, description: str = "training", *, interval: float = INTERVAL,
                 clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self.console = console
        self.description = description
        self.progress: Any = None
        self.task: Any = None
        self.train_loss: float | None = None
        self.val_loss: float | None = None
        self.ticker = Ticker(console, interval, clock)
        self.first_step = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[losses]}"),
            console=self.console, transient=False,
        )  # fmt: skip
        self.progress.start()
        self.task = self.progress.add_task(
            self.description, total=state.max_steps, completed=state.global_step, losses=""
        )
        self.ticker = Ticker(self.console, self.ticker.interval, self.ticker.clock)
        self.first_step = state.global_step  # a resumed run's pace counts from here

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step, losses=self._losses())
        if self.ticker.due():
            t = self.ticker
            losses = f", loss {self._losses()}" if self._losses() else ""
            self.console.print(f"{self.description}: step {state.global_step}/{state.max_steps}{losses}, "
                               f"{eta(t.clock() - t.start)} elapsed{t.left(state.global_step, state.max_steps, self.first_step)}",
                               highlight=False, markup=False, soft_wrap=True)  # fmt: skip

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any):
        logs = logs or {}
        if "loss" in logs:
            self.train_loss = float(logs["loss"])
        if "eval_loss" in logs:
            self.val_loss = float(logs["eval_loss"])

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any):
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step, losses=self._losses())
            self.progress.stop()
            self.progress = None

    def _losses(self) -> str:
        parts = []
        if self.train_loss is not None:
            parts.append(f"train {self.train_loss:.4f}")
        if self.val_loss is not None:
            parts.append(f"val {self.val_loss:.4f}")
        return "  ".join(parts)
