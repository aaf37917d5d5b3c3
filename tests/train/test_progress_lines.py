"""Progress on a console that is not a terminal: one plain line at most every interval."""

from __future__ import annotations

import io

from rich.console import Console
from transformers import TrainerControl, TrainerState

from tuneproof._ticker import LoggedProgress, eta
from tuneproof.train._callbacks import RichProgress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _train(console: Console, clock: Clock) -> None:
    state, control = TrainerState(max_steps=100), TrainerControl()
    cb = RichProgress(console, "train t", interval=60, clock=clock)
    cb.on_train_begin(None, state, control)
    for step in range(1, 101):
        clock.now += 2.0  # 2 s a step: 200 s in all
        state.global_step = step
        if step == 10:
            cb.on_log(None, state, control, logs={"loss": 1.5})
        cb.on_step_end(None, state, control)
    cb.on_train_end(None, state, control)


def test_training_prints_a_line_a_minute_with_step_loss_and_time_left_when_piped():
    out, clock = io.StringIO(), Clock()
    _train(Console(file=out, width=200), clock)
    lines = [line for line in out.getvalue().splitlines() if line.startswith("train t: step")]
    # at 60, 120 and 180 s: steps 30, 60 and 90, the time left from the pace so far
    assert lines == ["train t: step 30/100, loss train 1.5000, 1m00s elapsed, about 2m20s left",
                     "train t: step 60/100, loss train 1.5000, 2m00s elapsed, about 1m20s left",
                     "train t: step 90/100, loss train 1.5000, 3m00s elapsed, about 20s left"]  # fmt: skip


def test_a_terminal_gets_the_bar_and_no_plain_lines():
    out, clock = io.StringIO(), Clock()
    _train(Console(file=out, width=200, force_terminal=True), clock)
    assert "train t: step" not in out.getvalue()


def test_logged_progress_prints_each_task_a_minute_apart_when_piped():
    out, clock = io.StringIO(), Clock()
    with LoggedProgress(console=Console(file=out, width=200), interval=60, clock=clock) as progress:
        task = progress.add_task("generate tuned", total=300, rate="")
        for _ in range(30):
            clock.now += 10.0
            progress.update(task, advance=10, rate="40 tok/s")
    lines = [line for line in out.getvalue().splitlines() if line.startswith("generate tuned:")]
    assert lines[:2] == ["generate tuned: 60/300 (20%), 40 tok/s, 1m00s elapsed, about 4m00s left",
                         "generate tuned: 120/300 (40%), 40 tok/s, 2m00s elapsed, about 3m00s left"]  # fmt: skip
    assert len(lines) == 5  # at 60 ... 300 s


def test_eta_reads_as_a_duration():
    assert [eta(12.4), eta(250), eta(3720)] == ["12s", "4m10s", "1h02m"]


def test_the_evaluation_progress_prints_plain_lines_off_a_terminal():
    import io

    from rich.console import Console

    from tuneproof._ticker import LoggedProgress
    from tuneproof.evaluate._api import _Ui

    assert isinstance(_Ui(Console(file=io.StringIO(), force_terminal=False)).progress(), LoggedProgress)
