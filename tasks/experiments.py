"""The experiment task: one model x study x experiment, resumable from its row-level checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from grace.config import ExperimentConfig, ModelConfig, UtilizationConfig
from grace.pipeline import run_stage, stage_summary
from grace.report.limits import mass_limit, stage_breaches
from grace.serving import ManagedServer
from grace.serving.gate import RequestsRejected
from grace.studies import Study, Trial
from tasks.progress import ArtifactProgress
from tasks.verdict import NOT_FIT, stage_state


def retry_unless_rejected(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry condition: a stage whose first requests the server all rejected alike (HTTP 4xx) would
    be rejected again, and a stage over a data-quality limit ("Not fit") would give the same replies again; a
    lost server (restarted by the retry's ensure_alive) or failed rows are worth a retry."""
    return not isinstance(state.data, RequestsRejected) and state.name != NOT_FIT


@task(
    name="experiment",
    task_run_name="{exp.study}-{exp.experiment}",
    retries=2,
    retry_delay_seconds=[10, 60],
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_unless_rejected,
    cache_policy=NO_CACHE,  # the checkpoint file is the cache: a retry skips finished rows
)
def experiment_task(
    server: ManagedServer, model: ModelConfig, study: Study, trials: list[Trial], exp: ExperimentConfig,
    out_dir: Path, utilization: UtilizationConfig | None = None,
) -> Any:
    """The stage's summary; Failed "Not fit" (with the summary) when it breaches a data-quality limit."""
    total = study.stage_rows(exp, len(trials))
    progress = ArtifactProgress(model.name, f"{exp.study}-{exp.experiment}", total)
    result = run_stage(server, model, study, trials, exp, out_dir, progress=progress, utilization=utilization)
    progress.finish()
    summary = stage_summary(model.name, result)
    print(
        f"{summary['model']} {exp.key}: {result.ok} ok, {result.failed} failed, other {result.other}, "
        f"{result.total - result.skipped} done now in {result.wall_s:.1f}s, {result.skipped} resumed"
        + (f"; waited {summary['waited_s']} s for the server: {summary['wait_reasons']}" if summary["waited_s"] else "")
        + (f"; server busy {summary['busy_share']:.0%} of its batch slots" if summary["busy_share"] is not None
           else "")
        + (f" - LOW: {summary['utilization_cause']}" if summary["low_utilization"] else "")
    )
    breaches = stage_breaches(out_dir, study, exp.experiment, mass_limit(model))
    return stage_state(summary, breaches, f"{model.name} {exp.study}-{exp.experiment}")
