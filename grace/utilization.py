"""A study folder's utilization.jsonl: how busy each stage kept its server (grace.serving.metrics measures it).

Written by the stages (grace.pipeline), read by the stage summaries, the report and the GPU-hour split, which
need not import the serving layer to do so; read under the checkpoint module's policy (a torn last line left
out, any other bad line an error naming the file and line). A rerun of a stage appends; its latest line counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grace.checkpoint import append_records, read_records
from grace.records import Utilization, UtilizationLine

UTILIZATION_FILE = "utilization.jsonl"


def record_utilization(study_dir: Path, experiment: str, u: Utilization) -> None:
    """Append the stage's Utilization to its study folder's utilization.jsonl (one line per stage call)."""
    line = UtilizationLine(experiment=experiment, **u.model_dump())
    append_records(Path(study_dir) / UTILIZATION_FILE, UtilizationLine, [line])


def read_utilization(study_dir: Path) -> dict[str, Utilization]:
    """The latest Utilization per stage (exp1, exp2, extract) of a study folder."""
    path = Path(study_dir) / UTILIZATION_FILE
    if not path.exists():
        return {}
    return {line.experiment: Utilization.model_validate(line.model_dump(exclude={"experiment"}))
            for line in read_records(path, UtilizationLine)}


def columns(u: Utilization | None) -> dict[str, Any]:
    """The stage summary's utilization fields (run.json, done.json, the stages artifact)."""
    if u is None:
        return {"busy_share": None, "low_utilization": None}
    return {"busy_share": u.busy_share, "running_mean": u.running_mean, "waiting_mean": u.waiting_mean,
            "active_s": u.active_s, "kv_cache_mean": u.kv_cache_mean, "generation_tokens_per_s":
            u.generation_tokens_per_s, "prompt_tokens_per_s": u.prompt_tokens_per_s, "batch_slots": u.batch_slots,
            "low_utilization": u.low, "utilization_cause": u.cause}
