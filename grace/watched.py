"""A stage's requests under its server gate (grace.serving.watch): drain, then keep the waits, then the stop.

Shared by Exp 1 (grace.query) and Exp 2 (grace.scoring.engine): the stop (server lost, requests rejected) is
held until the stage has written its table, then raised with how far the stage got.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from grace.checkpoint import drain
from grace.serving.watch import Gate, StageStopped, record_waits

if TYPE_CHECKING:
    from grace.query import StageResult


async def drain_watched(gate: Gate, items: Iterator[Any], workers: int,
                        handle: Callable[[Any], Awaitable[None]]) -> StageStopped | None:
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
