"""Tasks after the experiments: extraction (per model x study), the data-quality report and the human
comparison (per run), each published as a Prefect artifact; then the all-models tables for the lab's analysis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from grace.analysis import write_analysis
from grace.checkpoint import Checkpoint
from grace.compare.report import compare_run, ranking_rows
from grace.config import ExtractionConfig, Retry
from grace.pipeline import run_extraction
from grace.records import Exp1Record
from grace.report.build import build_report
from grace.report.inline import inline_images
from grace.serving import Endpoint, ManagedServer
from grace.studies import Study
from grace.studies.registry import STUDIES
from tasks.artifacts import artifact_key
from tasks.experiments import retry_unless_rejected
from tasks.progress import ArtifactProgress


@task(name="extract", task_run_name="extract-{model}-{study.name}", retries=2, retry_delay_seconds=[10, 60],
      retry_condition_fn=retry_unless_rejected, cache_policy=NO_CACHE)
def extract_task(source: ManagedServer | Endpoint | None, model: str, study: Study, study_dir: Path,
                 settings: ExtractionConfig, retry: Retry) -> dict[str, Any]:
    """Rules first; what they cannot settle goes to the LLM stage (when enabled) on `source`: the model's own
    server, the extraction model's server, or an external endpoint."""
    total = len(Checkpoint(study_dir / "exp1.jsonl", Exp1Record).load(trim=False))
    progress = ArtifactProgress(model, f"{study.name}-extract", total)
    summary, endpoint = run_extraction(source, study, study_dir, settings, retry, progress)
    progress.finish()
    print(f"extract {model} {study.name}: {summary.line()}")
    return {"model": model, "study": study.name, "total": summary.total, "status": summary.status,
            "method": summary.method, "rules_status": summary.rules_status, "llm_requests": summary.llm_requests,
            "extraction_model": endpoint.model if endpoint is not None else None}


@task(name="report", task_run_name="report", cache_policy=NO_CACHE)
def report_task(run_dir: Path) -> Path:
    path = build_report(run_dir, STUDIES.values())  # the run folder's studies are found among those registered
    create_markdown_artifact(key=artifact_key("grace", "report"), markdown=inline_images(path.read_text(), path.parent),
                             description=f"Grace data-quality report for {run_dir.name}")
    return path


@task(name="compare", task_run_name="compare-{run_dir.name}", cache_policy=NO_CACHE)
def compare_task(run_dir: Path) -> Path:
    report = compare_run(run_dir, STUDIES.values())
    rows = ranking_rows(report.ranking, STUDIES.values(), report.references)
    if rows:
        create_table_artifact(key=artifact_key("grace", "compare"), table=rows,
                              description="Grace: how human-like is each model (ranked)")
    md = run_dir / "compare" / "compare.md"
    if md.exists():
        create_markdown_artifact(key=artifact_key("grace", "compare", "details"),
                                 markdown=inline_images(md.read_text(), md.parent),
                                 description=f"Grace human comparison for {run_dir.name}")
    return run_dir / "compare"


@task(name="analysis-tables", task_run_name="analysis-tables", cache_policy=NO_CACHE)
def tables_task(run_dir: Path) -> Path:
    """RUN_DIR/analysis/: every model's rows per study and experiment, the codebook and grace.R."""
    summary = write_analysis(run_dir, STUDIES.values())
    print(summary.line())
    for note in summary.notes:
        print(f"note: {note}")
    return summary.folder
