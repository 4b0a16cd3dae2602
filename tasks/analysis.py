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
from grace.compare.report import compare_run, fitness, glance
from grace.config import ExtractionConfig, Retry, UtilizationConfig
from grace.pipeline import run_extraction
from grace.records import Exp1Record
from grace.report.build import build_report
from grace.report.inline import inline_images
from grace.report.limits import stage_breaches
from grace.serving import Endpoint, ManagedServer
from grace.studies import Study
from grace.studies.registry import STUDIES
from grace.view.links import localize, served_url
from grace.view.page import write_viewer
from tasks.artifacts import run_key
from tasks.experiments import retry_unless_rejected
from tasks.progress import ArtifactProgress
from tasks.verdict import stage_state


@task(name="extract", task_run_name="extract-{model}-{study.name}", retries=2, retry_delay_seconds=[10, 60],
      retry_condition_fn=retry_unless_rejected, cache_policy=NO_CACHE)
def extract_task(source: ManagedServer | Endpoint | None, model: str, study: Study, study_dir: Path,
                 settings: ExtractionConfig, retry: Retry, utilization: UtilizationConfig | None = None,
                 judge: bool = True) -> Any:
    """Rules first; what they cannot settle goes to the LLM stage (when enabled) on `source`: the model's own
    server, the extraction model's server, or an external endpoint. Failed "Not fit" (with the summary) when
    too few replies were read, unless `judge` is off (the rules' pass before a separate extraction model)."""
    total = len(Checkpoint(study_dir / "exp1.jsonl", Exp1Record).load(trim=False))
    progress = ArtifactProgress(model, f"{study.name}-extract", total)
    summary, endpoint = run_extraction(source, study, study_dir, settings, retry, progress, utilization)
    progress.finish()
    print(f"extract {model} {study.name}: {summary.line()}")
    out = {"model": model, "study": study.name, "total": summary.total, "status": summary.status,
           "method": summary.method, "rules_status": summary.rules_status, "llm_requests": summary.llm_requests,
           "extraction_model": endpoint.model if endpoint is not None else None}
    breaches = stage_breaches(study_dir, study, "extract") if judge else []
    return stage_state(out, breaches, f"{model} extract-{study.name}")


@task(name="report", task_run_name="report", cache_policy=NO_CACHE)
def report_task(run_dir: Path, study_id: str | None = None) -> Path:
    path = build_report(run_dir, STUDIES.values())  # the run folder's studies are found among those registered
    markdown = localize(inline_images(path.read_text(), path.parent), served_url(run_dir))
    create_markdown_artifact(key=run_key(study_id, "report"), markdown=markdown,
                             description=f"Grace data-quality report for {run_dir.name}")
    return path


@task(name="compare", task_run_name="compare-{run_dir.name}", cache_policy=NO_CACHE)
def compare_task(run_dir: Path, study_id: str | None = None) -> Path:
    report = compare_run(run_dir, STUDIES.values())
    rows, about = glance(report.ranking, STUDIES.values(), report.references, fitness(run_dir))
    if rows:
        create_table_artifact(key=run_key(study_id, "compare"), table=rows, description=about)
    md = run_dir / "compare" / "compare.md"
    if md.exists():
        create_markdown_artifact(key=run_key(study_id, "compare", "details"),
                                 markdown=localize(inline_images(md.read_text(), md.parent), served_url(run_dir)),
                                 description=f"Grace human comparison for {run_dir.name}")
    return run_dir / "compare"


@task(name="trial-viewer", task_run_name="trial-viewer", cache_policy=NO_CACHE)
def view_task(run_dir: Path) -> Path:
    """RUN/trials.html: every trial of the run in one file that opens anywhere (grace.view)."""
    path = write_viewer(run_dir)
    print(f"trial viewer: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return path


@task(name="analysis-tables", task_run_name="analysis-tables", cache_policy=NO_CACHE)
def tables_task(run_dir: Path) -> Path:
    """RUN_DIR/analysis/: every model's rows per study and experiment, the codebook and grace.R."""
    summary = write_analysis(run_dir, STUDIES.values())
    print(summary.line())
    for note in summary.notes:
        print(f"note: {note}")
    return summary.folder
