"""A run's prefetch step per model: where it runs, its record in the run folder, the model served from it.

The flow calls `prefetch_model` for each model before the model's server exists (grace.serving.prefetch): on
the local profile in this process, on a cluster profile as a Job (grace.serving.prefetch_job). The outcome,
ok or failed with its reason, is kept as `<run>/<model>/prefetch.json`; a failed one stops the model before
any GPU is requested. A retry or a later run of the same folder asks for the commit recorded there rather
than the config's branch, so every attempt of a run serves the same weights; run.json lists the commits.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from grace.checkpoint import write_json_atomic
from grace.config import ModelConfig
from grace.errors import GraceError
from grace.run import RunFolder, safe_name
from grace.serving.prefetch import PrefetchError, PrefetchMarker, mismatch, prefetch, served

PREFETCH_FILE = "prefetch.json"


class PrefetchRecord(BaseModel):
    """One prefetch of one model in a run folder (`<run>/<model>/prefetch.json`)."""

    model_config = ConfigDict(extra="forbid")

    model: str
    status: Literal["ok", "failed"]
    where: Literal["local", "cluster"]
    attempt: int  # the run's attempt (run.json `attempts`) that made it
    revision: str  # what was asked for
    reason: str | None = None
    marker: PrefetchMarker | None = None
    seconds: float = 0.0
    finished_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.marker is not None


def record_path(run: RunFolder, model: str) -> Path:
    return run.root / safe_name(model) / PREFETCH_FILE


def read_record(run: RunFolder, model: str) -> PrefetchRecord | None:
    try:
        return PrefetchRecord.model_validate_json(record_path(run, model).read_text())
    except (OSError, ValueError):
        return None


def revision_to_fetch(run: RunFolder, model: ModelConfig) -> str:
    """The commit an earlier attempt of this run resolved (the same weights for the whole run), else the
    config's revision (a branch is resolved now, once)."""
    earlier = read_record(run, model.name)
    if earlier is not None and earlier.ok and earlier.marker is not None and earlier.marker.source == "hub" \
            and earlier.marker.hf_id == model.hf_id:
        return earlier.marker.commit
    return model.revision


def prefetch_model(run: RunFolder, model: ModelConfig, profile: str, *, run_id: str, attempt: int) -> PrefetchRecord:
    """The model's prefetch where its profile runs (here, or a Job on the cluster), checked against the model and
    the revision asked for, recorded in the run folder. Never raises for a failed prefetch: the record says."""
    revision = revision_to_fetch(run, model)
    where: Literal["local", "cluster"] = "local" if profile == "local" else "cluster"
    t0 = time.monotonic()
    marker: PrefetchMarker | None = None
    try:
        if where == "local":
            marker = prefetch(model, revision=revision)
        else:
            # imported here: the kubernetes client is only needed for the cluster profiles
            from grace.manifests.settings import load_cluster_settings
            from grace.serving.prefetch_job import KubernetesPrefetch

            marker = KubernetesPrefetch(model, settings=load_cluster_settings(), run_id=run_id,
                                        revision=revision).run()
        wrong = mismatch(marker, model, revision)
        if wrong:
            raise PrefetchError(f"{model.name}: the prefetch's marker does not match: {wrong}")
        record = PrefetchRecord(model=model.name, status="ok", where=where, attempt=attempt, revision=revision,
                                marker=marker, seconds=round(time.monotonic() - t0, 3))
    except GraceError as e:
        record = PrefetchRecord(model=model.name, status="failed", where=where, attempt=attempt, revision=revision,
                                reason=str(e), marker=marker, seconds=round(time.monotonic() - t0, 3))
    write_json_atomic(record_path(run, model.name), record.model_dump(mode="json"))
    return record


def served_model(run: RunFolder, model: ModelConfig) -> ModelConfig:
    """The model as this run serves it: pinned to the commit its prefetch recorded (unchanged without one)."""
    record = read_record(run, model.name)
    if record is None or not record.ok or record.marker is None:
        return model
    return served(model, record.marker)


def provenance(record: PrefetchRecord) -> dict[str, object]:
    """What run.json keeps of a model's weights."""
    m = record.marker
    if m is None:
        return {"status": record.status, "revision": record.revision, "reason": record.reason}
    return {"status": record.status, "hf_id": m.hf_id, "requested": m.requested, "commit": m.commit,
            "source": m.source, "files": m.file_count, "bytes": m.total_bytes, "prefetch_s": record.seconds}
