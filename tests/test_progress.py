"""Progress bookkeeping: throttled publishing, a log line every 10%, rate and time left (a fake clock)."""

from __future__ import annotations

from grace.progress import ProgressTracker, duration


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_updates_are_throttled_and_the_last_row_always_publishes() -> None:
    clock = Clock()
    p = ProgressTracker(total=1000, min_interval_s=0.5, clock=clock)
    published = 0
    for _ in range(999):  # 999 rows within 0.099 s: one publish (the first), not 999
        clock.t += 0.0001
        published += p.advance()[0]
    assert published == 1
    clock.t += 0.0001
    assert p.advance()[0] is True and p.fraction == 1.0  # the last row, however soon
    p2 = ProgressTracker(total=100, min_interval_s=0.5, clock=clock)
    rates = []
    for _ in range(100):  # one row every 0.1 s: a publish every 5 rows at most
        clock.t += 0.1
        rates.append(p2.advance()[0])
    assert 19 <= sum(rates) <= 21


def test_a_log_line_every_tenth_with_rate_and_time_left() -> None:
    clock = Clock()
    p = ProgressTracker(total=2424, label="exp1 study2", clock=clock)
    lines = []
    for _ in range(2424):
        clock.t += 0.05  # 20 rows/s
        _, line = p.advance()
        if line:
            lines.append(line)
    assert len(lines) == 10
    assert lines[0].startswith("exp1 study2: 243 / 2,424 rows (10%), 20.0 rows/s, ") and lines[0].endswith("left")
    assert "1m 49s left" in lines[0]  # (2424 - 243) / 20
    assert lines[-1] == "exp1 study2: 2,424 / 2,424 rows (100%), 20.0 rows/s, done"


def test_resumed_rows_count_as_done_but_not_in_the_rate() -> None:
    clock = Clock()
    p = ProgressTracker(total=100, clock=clock)
    p.skip(50)
    assert p.fraction == 0.5 and p.rate() == 0.0 and p.eta_s() is None
    for _ in range(10):
        clock.t += 1.0
        p.advance()
    assert p.rate() == 1.0 and p.eta_s() == 40.0


def test_durations_read_as_people_write_them() -> None:
    assert [duration(s) for s in (0, 42.4, 187, 7500)] == ["0s", "42s", "3m 07s", "2h 05m"]
