"""The preflight task: a few trials of every stage on the model's own server before its full study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from grace.config import Config, ExtractionConfig, ModelConfig
from grace.preflight import PreflightFailed, PreflightReport, run_preflight
from grace.serving import ManagedServer
from grace.studies import Study, Trial
from grace.ui_format import mark, md_escape
from tasks.artifacts import run_key


def preflight_markdown(report: PreflightReport) -> str:
    verdict = "✓ passed" if report.passed else f"✗ **failed**: {md_escape(report.reason)}"
    lines = [f"# Preflight of {report.model}: {verdict}", "", f"{report.wall_s:.0f} s.", ""]
    lines += [f"- {mark(c.passed, c.fatal)} · {c.name}: {md_escape(c.detail)}" for c in report.checks]
    return "\n".join(lines)


@task(name="preflight", task_run_name="preflight-{model.name}", cache_policy=NO_CACHE)
def preflight_task(server: ManagedServer, model: ModelConfig, cfg: Config,
                   studies: dict[str, tuple[Study, list[Trial]]], experiments: list[str], folder: Path,
                   extraction: ExtractionConfig, plan: Any, study_id: str | None = None) -> dict[str, Any]:
    """Fails (no retry: a broken model stays broken) with the first failed check as its message."""
    report = run_preflight(server.ensure_alive(), model, cfg, studies, experiments, folder, extraction=extraction,
                           experiment_for=lambda s, e: plan.experiment(cfg, s, e))
    create_markdown_artifact(key=run_key(study_id, model.name, "preflight"), markdown=preflight_markdown(report),
                             description=f"Grace preflight of {model.name}")
    print(report.line())
    if not report.passed:
        raise PreflightFailed(f"{model.name} failed its preflight: {report.reason}")
    return report.as_dict()
