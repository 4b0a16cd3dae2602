"""Append-only JSONL checkpoint, flushed per record, and atomic writes of finished tables.

Resume reads every complete line, skips keys already done, and redoes the rest. A truncated last line
(a crash mid-write) is cut off and reported; the final table never holds two lines for one key.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

import pandas as pd

from grace.records import Record

R = TypeVar("R", bound=Record)
T = TypeVar("T")


@dataclass
class LoadReport:
    lines: int = 0
    records: int = 0
    truncated: int = 0  # an incomplete last line, cut off
    invalid: list[int] = field(default_factory=list)  # line numbers that did not parse
    superseded: int = 0  # older lines for a key that a later line replaced


class Checkpoint(Generic[R]):
    def __init__(self, path: Path, record_type: type[R]) -> None:
        self.path = Path(path)
        self.record_type = record_type
        self.report = LoadReport()
        self._fh: IO[str] | None = None

    def load(self, trim: bool = True) -> dict[str, R]:
        """All records by key; a later line for a key replaces an earlier one (a redone row).

        With `trim`, a torn last line is also cut off the file so appends start clean; readers that must not
        touch the file (reports) pass trim=False.
        """
        self.report = LoadReport()
        out: dict[str, R] = {}
        if not self.path.exists():
            return out
        raw = self.path.read_bytes()
        if raw and not raw.endswith(b"\n"):
            cut = raw.rfind(b"\n") + 1
            self.report.truncated = 1
            if trim:
                with open(self.path, "r+b") as f:  # drop the partial line so appends start clean
                    f.truncate(cut)
            raw = raw[:cut]
        for i, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            self.report.lines += 1
            try:
                rec = self.record_type.model_validate_json(line)
            except ValueError:  # pydantic's ValidationError included
                self.report.invalid.append(i)
                continue
            if rec.key in out:
                self.report.superseded += 1
            out[rec.key] = rec
        self.report.records = len(out)
        return out

    def done_keys(self) -> set[str]:
        return {k for k, r in self.load().items() if r.done}

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")

    def append(self, record: R) -> None:
        if self._fh is None:
            self.open()
        assert self._fh is not None
        self._fh.write(record.model_dump_json() + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def __enter__(self) -> Checkpoint[R]:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it over `target` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json_atomic(target: Path, data: Any) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def write_table(df: pd.DataFrame, stem: Path) -> list[Path]:
    """Write `stem`.parquet and `stem`.csv atomically; nested values become JSON strings."""
    flat = df.copy()
    for col in flat.columns:
        if flat[col].map(lambda v: isinstance(v, dict | list)).any():
            flat[col] = flat[col].map(lambda v: json.dumps(v) if isinstance(v, dict | list) else v)
    paths = []
    for suffix, writer in ((".parquet", _to_parquet), (".csv", _to_csv)):
        target = stem.with_suffix(suffix)
        with atomic_path(target) as tmp:
            writer(flat, tmp)
        paths.append(target)
    return paths


def _to_parquet(df: pd.DataFrame, path: Path) -> None:
    df.to_parquet(path, index=False)


def _to_csv(df: pd.DataFrame, path: Path) -> None:
    df.to_csv(path, index=False)


async def drain(items: Iterator[T], workers: int, handle: Callable[[T], Awaitable[None]]) -> None:
    """Run `handle` over `items` with at most `workers` in flight.

    The workers share one iterator, so memory stays flat whatever the number of items (no task per item).
    When a `handle` raises, no worker takes another item; the others finish the one they hold (an answer
    already on its way is still recorded), then the first exception is raised. Items never taken stay untouched.
    """
    failed: list[Exception] = []

    async def worker() -> None:
        while not failed:
            try:
                item = next(items)
            except StopIteration:
                return
            try:
                await handle(item)
            except Exception as e:  # noqa: BLE001 - re-raised below, once the other workers are done
                failed.append(e)

    await asyncio.gather(*(worker() for _ in range(workers)))
    if failed:
        raise failed[0]
