"""A study folder's server-waits.jsonl: every pause of its stages for their server, across reruns and retries.

Written by the stages (their gate's `ServerWait` records, grace.serving.gate), read by the stage summaries
and the report, which need not import the serving layer to do so; read under the checkpoint module's policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grace.checkpoint import append_records, read_records
from grace.records import ServerWait

WAITS_FILE = "server-waits.jsonl"


def record_waits(study_dir: Path, experiment: str, waits: list[ServerWait]) -> None:
    """Append this call's pauses to the study folder's server-waits.jsonl (kept across reruns and retries)."""
    if waits:
        append_records(Path(study_dir) / WAITS_FILE, ServerWait,
                       [w.model_copy(update={"experiment": experiment}) for w in waits])


def read_waits(study_dir: Path, experiment: str | None = None) -> list[ServerWait]:
    """The study folder's waits, of one stage (`experiment`) or all."""
    path = Path(study_dir) / WAITS_FILE
    if not path.exists():
        return []
    return [w for w in read_records(path, ServerWait) if experiment is None or w.experiment == experiment]


def summarize_waits(waits: list[ServerWait]) -> dict[str, Any]:
    """For a stage summary: how long the stage waited for its server, how often, and why."""
    back = [w for w in waits if w.outcome == "back"]
    stops = [w for w in waits if w.outcome in ("lost", "rejected")]
    return {
        "server_waits": len(back),
        "waited_s": round(sum(w.waited_s for w in waits), 1),
        "server_stops": len(stops),
        "wait_reasons": "; ".join(f"{w.outcome} after {w.waited_s:.0f} s: {w.reason}" for w in waits)[:1000],
    }
