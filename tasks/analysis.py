"""Tasks after the experiments: extraction (per model x study), the data-quality report and the human
comparison (per run), each published as a Prefect artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from grace.compare.report import compare_run
from grace.config import ExtractionConfig, Retry
from grace.extract.engine import extract_stage
from grace.report.build import build_report
from grace.serving import ManagedServer
from tasks.artifacts import artifact_key
from tasks.experiments import retry_unless_rejected


@task(name="extract", task_run_name="extract-{study}", retries=2, retry_delay_seconds=[10, 60],
      retry_condition_fn=retry_unless_rejected, cache_policy=NO_CACHE)
def extract_task(server: ManagedServer | None, study: str, stage_dir: Path, settings: ExtractionConfig,
                 retry: Retry) -> dict[str, Any]:
    """Rules first; what they cannot settle goes to the LLM stage on the model's own server (if enabled)."""
    endpoint = server.ensure_alive() if (server is not None and settings.llm_fallback) else None
    summary = extract_stage(stage_dir, study, endpoint, concurrency=settings.concurrency,
                            max_tokens=settings.max_tokens, retry=retry)
    print(f"extract {study}: {summary.line()}")
    return {"study": study, "total": summary.total, "status": summary.status, "method": summary.method,
            "rules_status": summary.rules_status, "llm_requests": summary.llm_requests}


@task(name="report", cache_policy=NO_CACHE)
def report_task(run_dir: Path) -> Path:
    path = build_report(run_dir)
    create_markdown_artifact(key=artifact_key("grace", "report"), markdown=path.read_text(),
                             description=f"Grace data-quality report for {run_dir.name}")
    return path


@task(name="compare", cache_policy=NO_CACHE)
def compare_task(run_dir: Path) -> Path:
    report = compare_run(run_dir)
    rows = [r.model_dump(mode="json") for r in report.ranking]
    if rows:
        create_table_artifact(key=artifact_key("grace", "compare"), table=rows,
                              description="Grace: how human-like is each model (ranked)")
    md = run_dir / "compare" / "compare.md"
    if md.exists():
        create_markdown_artifact(key=artifact_key("grace", "compare", "details"), markdown=md.read_text(),
                                 description=f"Grace human comparison for {run_dir.name}")
    return run_dir / "compare"
