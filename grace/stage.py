"""One checkpointed stage: the steps Exp 1, Exp 2 (each scoring path) and extraction share.

A stage turns work items (Exp 1: trial x replicate; Exp 2: a trial; extraction: an Exp 1 record) into records,
one per key, appended to its JSONL checkpoint as they are made (grace.checkpoint). Every stage runs the same
steps; a `Stage` supplies only what is its own (its items and their keys, one item's record, a record's table
rows):

1. open the checkpoint and skip the keys already done: a resume (the progress callback hears of them with
   `resumed=True`). A stage redone whole each time (`resumable = False`: extraction, whose records depend on
   the Exp 1 replies and the extraction settings of this call) writes a new file instead, which replaces the
   old one only when the stage has finished (a stop or a crash leaves the old one as it was);
2. the work on the rest: through a server (`run_served`: async, `concurrency` items in flight under the stage's
   server gate, grace.serving.gate) or in this process (`run_local`: the in-process scoring, extraction);
3. count the statuses over the checkpoint and write the tidy table beside it (`tabulate`);
4. keep the stage's pauses for its server, then raise the stop (server lost, requests rejected), if any, with
   how far the stage got (`settle`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx
import pandas as pd

from grace.checkpoint import Checkpoint, LoadReport, atomic_path, drain, write_table
from grace.client import make_client
from grace.config import Retry
from grace.progress import Progress
from grace.records import Record
from grace.server_waits import record_waits
from grace.serving.base import Endpoint
from grace.serving.gate import Gate, StageStopped

T = TypeVar("T")  # a work item
R = TypeVar("R", bound=Record)
Write = Callable[[R], None]


@dataclass
class StageResult:
    """What one stage did: counts for the flow's artifact and the closing notes."""

    study: str
    experiment: str
    checkpoint: Path
    total: int
    skipped: int = 0  # done before this call (resume)
    ok: int = 0
    failed: int = 0
    other: dict[str, int] = field(default_factory=dict)  # e.g. truncated, empty
    sent: int = 0  # requests sent in this call, retries included (in process: forward passes)
    concurrency: int = 0  # requests (Exp 1) or trials (Exp 2) kept in flight; 0: not a server stage
    wall_s: float = 0.0
    tables: list[Path] = field(default_factory=list)
    load_report: LoadReport | None = None
    waits: list[dict[str, Any]] = field(default_factory=list)  # this call's pauses for the server (watch.Wait)

    @property
    def waited_s(self) -> float:
        return sum(float(w["waited_s"]) for w in self.waits)

    @property
    def rps(self) -> float:
        done = self.total - self.skipped
        return done / self.wall_s if self.wall_s > 0 else 0.0


class Stage(ABC, Generic[T, R]):
    """What one stage plugs into the skeleton."""

    experiment: str  # exp1, exp2, extract: the result's name and the tag of its server waits
    file: str  # the checkpoint's name in the study folder; the tidy table is its stem .parquet / .csv
    record_type: type[R]
    resumable: bool = True  # False: redone whole, the new file replacing the old one at the end
    held: tuple[str, ...] = ()  # statuses held back while no request of the stage was answered (run_served)

    def __init__(self, study_name: str) -> None:
        self.study_name = study_name

    @abstractmethod
    def items(self) -> list[T]:
        """Every work item of this call, in the table's order."""

    @abstractmethod
    def key(self, item: T) -> str:
        """The checkpoint key of the item's record."""

    @abstractmethod
    def rows(self, record: R) -> list[dict[str, Any]]:
        """The tidy table's rows for one record."""

    def frame(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        return pd.DataFrame(rows)

    def cost(self, record: R) -> int:
        """Requests this record cost (retries included), for StageResult.sent."""
        return record.attempts


class ServedStage(Stage[T, R]):
    """A stage whose items are requests to a server, many in flight (run_served)."""

    def start(self, client: httpx.AsyncClient) -> None:  # noqa: B027 - a hook: most stages need nothing here
        """Before the first item, with the stage's client (e.g. Exp 2 picks how it renders its prompts)."""

    @abstractmethod
    async def record(self, client: httpx.AsyncClient, item: T) -> R:
        """The item's record; a failure is a record with its status, not an exception."""


class LocalStage(Stage[T, R]):
    """A stage that does its work in this process, in batches (run_local)."""

    @abstractmethod
    def work(self, todo: list[T], write: Write[R], progress: Progress | None) -> int:
        """Make the records of `todo`, writing each as it is made; returns the work sent (passes, requests)."""


class StageRun(Generic[T, R]):
    """One call of a stage: its checkpoint, what is left to do, its result."""

    def __init__(self, stage: Stage[T, R], out_dir: Path, progress: Progress | None) -> None:
        self.stage = stage
        self.out_dir = Path(out_dir)
        self.ckpt: Checkpoint[R] = Checkpoint(self.out_dir / stage.file, stage.record_type)
        done = self.ckpt.done_keys() if stage.resumable else set()
        items = stage.items()
        self.result = StageResult(stage.study_name, stage.experiment, self.ckpt.path, total=len(items),
                                  load_report=self.ckpt.report)
        self.todo: Iterator[T] = (i for i in items if stage.key(i) not in done)  # lazy: memory stays flat
        self.result.skipped = sum(stage.key(i) in done for i in items)
        if progress and self.result.skipped:
            progress(self.result.skipped, resumed=True)

    @contextmanager
    def writing(self) -> Iterator[Write[R]]:
        """Append each record as it is made (flushed per record); a stage that is not resumable writes a new
        file, renamed over the old one when the block ends without an error."""
        if self.stage.resumable:
            with self.ckpt:
                yield self.ckpt.append
        else:
            with atomic_path(self.ckpt.path) as tmp, Checkpoint(tmp, self.stage.record_type) as fresh:
                yield fresh.append


def input_columns(trial: dict[str, str], own: Collection[str]) -> dict[str, str]:
    """A trial's input columns for a stage table, each named like one of the table's `own` columns renamed
    `input_<name>` (as `grace extract` does), so that neither overwrites the other (a lab's `status` column)."""
    return {(f"input_{k}" if k in own and k != "trial_id" else k): v for k, v in trial.items()}


def tabulate(stage: Stage[T, R], out_dir: Path, result: StageResult) -> None:
    """Count the statuses of this call's items over the whole checkpoint and write the tidy table."""
    records = Checkpoint(Path(out_dir) / stage.file, stage.record_type).load()
    counts: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    for item in stage.items():
        rec = records.get(stage.key(item))
        if rec is None:
            continue
        counts[rec.status] = counts.get(rec.status, 0) + 1
        rows += stage.rows(rec)
    result.ok = counts.pop("ok", 0)
    result.failed = counts.pop("error", 0)
    result.other = counts
    result.tables = write_table(stage.frame(rows), Path(out_dir) / Path(stage.file).stem)


async def drain_watched(gate: Gate, items: Iterator[T], workers: int,
                        handle: Callable[[T], Awaitable[None]]) -> StageStopped | None:
    """`drain` under the stage's gate; the stop is returned, not raised (other errors are raised)."""
    try:
        await drain(items, workers, handle)
    except StageStopped as e:
        return e
    finally:
        await gate.aclose()
    return None


def settle(gate: Gate, result: StageResult, out_dir: Path, stopped: StageStopped | None) -> None:
    """Keep the stage's pauses for its server (result.waits and out_dir/server-waits.jsonl), then raise the stop,
    if any, saying how many rows are done (ok or another final status) of how many."""
    result.waits = [w.as_dict() for w in gate.waits]
    record_waits(out_dir, result.experiment, gate.waits)
    if stopped is not None:
        raise stopped.after(result.ok + sum(result.other.values()), result.total) from None


async def run_served(stage: ServedStage[T, R], endpoint: Endpoint, out_dir: Path, *, concurrency: int,
                     retry: Retry, progress: Progress | None = None) -> StageResult:
    """The skeleton through a server: `concurrency` items in flight under one gate, each record appended as it
    arrives. A record whose status is in `stage.held` (an HTTP 4xx) is held back until some request of the stage
    is answered: if the stage then stops because its first requests were all rejected alike, the fault was the
    stage's, not the row's, and the held rows are recorded as `error` (redone on resume)."""
    run = StageRun(stage, out_dir, progress)
    run.result.concurrency = concurrency
    gate = Gate(endpoint)
    held: list[R] = []
    t0 = time.perf_counter()
    async with make_client(concurrency, retry, gate=gate, api_key=endpoint.api_key) as client:
        stage.start(client)
        with run.writing() as write:

            async def handle(item: T) -> None:
                rec = await stage.record(client, item)
                run.result.sent += stage.cost(rec)
                if rec.status in stage.held and gate.unconfirmed:
                    held.append(rec)
                else:
                    while held:
                        write(held.pop(0))
                    write(rec)
                if progress:
                    progress(1)

            stopped = await drain_watched(gate, run.todo, concurrency, handle)
            for rec in held:  # a stage-wide rejection is redone on resume; otherwise the row's status stands
                write(rec.model_copy(update={"status": "error"}) if stopped is not None else rec)
    run.result.wall_s = time.perf_counter() - t0
    tabulate(stage, out_dir, run.result)
    settle(gate, run.result, out_dir, stopped)
    return run.result


def run_local(stage: LocalStage[T, R], out_dir: Path, progress: Progress | None = None) -> StageResult:
    """The skeleton in this process: the stage's work on what is left, then the table."""
    run = StageRun(stage, out_dir, progress)
    t0 = time.perf_counter()
    with run.writing() as write:
        run.result.sent = stage.work(list(run.todo), write, progress)
    run.result.wall_s = time.perf_counter() - t0
    tabulate(stage, out_dir, run.result)
    return run.result
