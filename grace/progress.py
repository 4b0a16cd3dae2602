"""Progress of a stage as rows arrive: when to publish an update (throttled) and what a log line says.

Pure bookkeeping with an injectable clock, so the throttling is tested without waiting; the Prefect progress
artifact (tasks/progress.py) and the terminal's progress bar are the two places it is shown.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class Progress(Protocol):
    """What a stage calls as rows finish: `n` more rows done; `resumed` for rows found done already."""

    def __call__(self, n: int, *, resumed: bool = False) -> None: ...


def duration(seconds: float) -> str:
    """A short human duration: 42s, 3m 07s, 2h 05m."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {(s % 3600) // 60:02d}m"


@dataclass
class ProgressTracker:
    """Rows done of `total`; `advance` says whether to publish now and which log line (every `log_every`)."""

    total: int
    label: str = ""
    min_interval_s: float = 0.5  # at most two updates a second
    log_every: float = 0.10  # a log line each time another 10% of the rows is done
    clock: Callable[[], float] = time.monotonic
    done: int = 0
    resumed: int = 0  # rows already done before this run (a resume): not counted in the rate
    _start: float = field(init=False)
    _last_publish: float = field(init=False, default=float("-inf"))
    _next_log: float = field(init=False)

    def __post_init__(self) -> None:
        self._start = self.clock()
        self._next_log = self.log_every

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 1.0

    def rate(self) -> float:
        """Rows per second done in this run."""
        elapsed = self.clock() - self._start
        fresh = self.done - self.resumed
        return fresh / elapsed if elapsed > 0 and fresh > 0 else 0.0

    def eta_s(self) -> float | None:
        r = self.rate()
        return (self.total - self.done) / r if r > 0 else None

    def skip(self, n: int) -> None:
        """Rows found done already (a resume)."""
        self.resumed += n
        self.done += n

    def advance(self, n: int = 1) -> tuple[bool, str | None]:
        """Count `n` rows; (publish now?, a log line or None). The last row always publishes."""
        self.done += n
        now = self.clock()
        finished = self.done >= self.total
        publish = finished or now - self._last_publish >= self.min_interval_s
        if publish:
            self._last_publish = now
        line = None
        if self.total and (self.fraction >= self._next_log or finished):
            while self._next_log <= self.fraction:
                self._next_log += self.log_every
            line = self.line()
        return publish, line

    def line(self) -> str:
        eta = self.eta_s()
        left = "done" if self.done >= self.total else (f"{duration(eta)} left" if eta is not None else "")
        head = f"{self.label}: " if self.label else ""
        return (f"{head}{self.done:,} / {self.total:,} rows ({self.fraction:.0%}), {self.rate():.1f} rows/s"
                + (f", {left}" if left else ""))
