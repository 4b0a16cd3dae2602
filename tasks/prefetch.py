"""The prefetch task: a model's weights into the cache before its server (and its GPUs) are requested."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from grace.config import load_config
from grace.prefetching import prefetch_model, provenance
from grace.run import RunFolder
from grace.serving.prefetch import PrefetchError


@task(name="prefetch", task_run_name="prefetch-{model}", cache_policy=NO_CACHE)
def prefetch_task(model: str, profile: str, run_dir: str, run_id: str, attempt: int) -> dict[str, Any]:
    """Fails with the reason when the weights cannot be made ready (the record in the run folder says so too);
    no retry here: the cluster's Job retries a download itself (backoffLimit)."""
    record = prefetch_model(RunFolder(Path(run_dir)), load_config().model(model), profile, run_id=run_id,
                            attempt=attempt)
    if not record.ok:
        raise PrefetchError(record.reason or f"{model}: prefetch failed")
    m = record.marker
    assert m is not None
    fetched = f"{m.downloaded_bytes / 1e6:,.1f} MB fetched" if m.downloaded_bytes else "already in the cache"
    print(f"{model}: weights {m.hf_id}@{m.requested} = {m.commit} ({m.file_count} files, {m.total_bytes / 1e6:,.1f} "
          f"MB; {fetched}) in {record.seconds:.1f} s ({record.where})")
    return provenance(record)
