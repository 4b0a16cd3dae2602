"""Append-only JSONL checkpoint, flushed per record, atomic writes of finished tables, and the one way every
JSONL file of Grace is read.

The reading policy, for every JSONL file (checkpoints, server waits, a user's replies or annotated answers):
blank lines are skipped; the last line, when it has no newline at its end and does not parse, is torn (a
write cut short by a crash): it is left out and reported (`LoadReport.truncated`), and cut off the file when
the file is about to be appended to; any other line that does not parse is an error (DataError) naming the
file and the line. A last line without its newline that does parse is a whole record.

Resume reads every record, skips keys already done, and redoes the rest; a later line for a key replaces an
earlier one (a redone row), so the final table never holds two lines for one key.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

import pandas as pd
from pydantic import BaseModel, ValidationError

from grace.errors import DataError
from grace.records import Record

R = TypeVar("R", bound=Record)
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


@dataclass
class LoadReport:
    lines: int = 0
    records: int = 0
    truncated: int = 0  # a torn last line, left out
    superseded: int = 0  # older lines for a key that a later line replaced
    done_lines: Counter[str] = field(default_factory=Counter)  # per key, its lines of a finished record


def _lines(path: Path, parse: Callable[[str], T], report: LoadReport | None, trim: bool) -> Iterator[tuple[int, T]]:
    """(line number, parsed line) of a JSONL file, under the module's reading policy; `parse` raises ValueError
    with the reason on a bad line."""
    raw = Path(path).read_bytes()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the file ends with a newline
    open_end = bool(raw) and not raw.endswith(b"\n")  # the last line has no newline: whole or torn
    for i, line in enumerate(lines, start=1):
        text = line.decode("utf-8", errors="replace")
        if not text.strip():
            continue
        try:
            parsed = parse(text)
        except ValueError as e:
            if open_end and i == len(lines):  # torn by a crash mid-write: left out, reported
                if report is not None:
                    report.truncated = 1
                if trim:
                    with open(path, "r+b") as f:  # so that appends start on a clean line
                        f.truncate(len(raw) - len(line))
                return
            raise DataError(f"{path}: line {i}: {e}") from None
        if open_end and i == len(lines) and trim:
            with open(path, "ab") as f:  # a whole last line without its newline: ended, so appends start clean
                f.write(b"\n")
        yield i, parsed


def _model_parser(model: type[M]) -> Callable[[str], M]:
    def parse(text: str) -> M:
        try:
            return model.model_validate_json(text)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"not a valid {model.__name__} ({where + ': ' if where else ''}{first['msg']})"
                             ) from None

    return parse


def _object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON ({e.msg})") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def read_records(path: Path, model: type[M], report: LoadReport | None = None) -> Iterator[M]:
    """Every line of a JSONL file as a `model`, in file order (the reading policy: module docstring)."""
    for _, rec in _lines(Path(path), _model_parser(model), report, trim=False):
        yield rec


def append_records(path: Path, model: type[M], records: list[M]) -> None:
    """Append records to a JSONL file of `model` lines that has no key (e.g. server waits), after the policy's
    repair of its end (a torn last line cut off, a whole one ended), as a checkpoint appends."""
    path = Path(path)
    if path.exists():
        for _ in _lines(path, _model_parser(model), None, trim=True):
            pass
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        for rec in records:
            fh.write(rec.model_dump_json() + "\n")


def read_objects(path: Path, report: LoadReport | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, JSON object) of every line of a JSONL file whose lines have no record type of Grace (a
    user's replies or annotated answers, older records read field by field), under the same policy."""
    yield from _lines(Path(path), _object, report, trim=False)


class Checkpoint(Generic[R]):
    def __init__(self, path: Path, record_type: type[R]) -> None:
        self.path = Path(path)
        self.record_type = record_type
        self.report = LoadReport()
        self._fh: IO[str] | None = None

    def load(self, trim: bool = True) -> dict[str, R]:
        """All records by key; a later line for a key replaces an earlier one (a redone row). A torn last line is
        left out (and reported); any other bad line is a DataError naming the file and line.

        With `trim`, a torn last line is also cut off the file so appends start clean; readers that must not
        touch the file (reports) pass trim=False.
        """
        self.report = LoadReport()
        out: dict[str, R] = {}
        if not self.path.exists():
            return out
        for _, rec in _lines(self.path, _model_parser(self.record_type), self.report, trim):
            self.report.lines += 1
            if rec.key in out:
                self.report.superseded += 1
            out[rec.key] = rec
            self.report.done_lines[rec.key] += rec.done
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
