"""Plain progress lines for output that is not a terminal (a pipe, a log file).

Rich progress bars draw only on a terminal: redirected to a file, a long stage would show
nothing for many minutes. :class:`Ticker` lets a stage print one plain line at most every
``interval`` seconds instead, and :class:`LoggedProgress` is a rich ``Progress`` that does
so for each of its tasks when its console is not a terminal.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.progress import Progress

__all__ = ["INTERVAL", "LoggedProgress", "Ticker", "eta"]

INTERVAL = 60.0  # seconds between plain lines: a long stage says something at least every minute


def eta(seconds: float) -> str:
    """A duration as ``1h02m``, ``4m10s`` or ``12s``."""
    s = max(0, round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Ticker:
    """Says when a plain progress line is due: when the console is not a terminal, at most
    once per ``interval`` seconds (the first at ``interval`` after the start).

    Args:
        console: a rich console; nothing is ever due on a terminal (the bar shows progress).
        interval: the seconds between lines.
        clock: the time source, in seconds (injectable for tests).
    """

    def __init__(self, console: Any, interval: float = INTERVAL, clock: Callable[[], float] = time.monotonic):
        self.console, self.interval, self.clock = console, interval, clock
        self.start = self.last = clock()

    @property
    def active(self) -> bool:
        return not self.console.is_terminal

    def due(self) -> bool:
        """Whether to print a line now; when it is, the next one is an interval later."""
        now = self.clock()
        if not self.active or now - self.last < self.interval:
            return False
        self.last = now
        return True

    def left(self, done: float, total: float | None, done_at_start: float = 0) -> str:
        """``", about 4m10s left"`` from the pace so far, or "" before any progress."""
        made = done - done_at_start
        if not total or made <= 0:
            return ""
        return f", about {eta((self.clock() - self.start) / made * (total - done))} left"


class LoggedProgress(Progress):
    """A rich ``Progress`` that, on a console that is not a terminal, also prints one plain
    line per task at most every ``interval`` seconds (``generate tuned: 120/300 (40%), ...``).

    Takes rich ``Progress``'s arguments plus ``interval`` and ``clock`` (see :class:`Ticker`).
    """

    def __init__(self, *columns: Any, interval: float = INTERVAL, clock: Callable[[], float] = time.monotonic, **kwargs: Any):
        super().__init__(*columns, **kwargs)
        self._interval, self._clock = interval, clock
        self._tickers: dict[Any, Ticker] = {}

    def add_task(self, description: str, *args: Any, **kwargs: Any) -> Any:
        task_id = super().add_task(description, *args, **kwargs)
        self._tickers[task_id] = Ticker(self.console, self._interval, self._clock)
        return task_id

    def update(self, task_id: Any, *args: Any, **kwargs: Any) -> None:
        super().update(task_id, *args, **kwargs)
        self._tick(task_id)

    def advance(self, task_id: Any, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self._tick(task_id)

    def _tick(self, task_id: Any) -> None:
        ticker = self._tickers.get(task_id)
        if ticker is None or not ticker.due():
            return
        task = self._tasks[task_id]
        of = f"/{task.total:g} ({task.completed / task.total:.0%})" if task.total else ""
        rate = task.fields.get("rate")
        line = (f"{task.description}: {task.completed:g}{of}{', ' + rate if rate else ''}, "
                f"{eta(ticker.clock() - ticker.start)} elapsed{ticker.left(task.completed, task.total)}")  # fmt: skip
        self.console.print(line, highlight=False, markup=False, soft_wrap=True)
