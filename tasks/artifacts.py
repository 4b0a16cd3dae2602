"""Prefect artifacts: per model a table of rows done / failed / time per stage and one of how busy each stage kept
the server, and the run's summary with links to the run's other artifacts (their pages in the UI) and to the trial
viewer.

Keys: `grace-run`, `grace-report`, ... for a run of no name; a named study's carry its `study_id`
(`grace-2026-12-main-run`), so the artifact index keeps each named study's history apart.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
)
from prefect.runtime import flow_run as current_run

from grace.report.summary import ArtifactLink, run_summary
from grace.run import safe_name
from grace.ui_format import counts, md_escape, percent, readable_rows
from grace.view.links import served_url

log = logging.getLogger(__name__)
UI_ARTIFACT = "/v2/artifacts/artifact/{id}"  # the UI's page of one artifact, from wherever the UI is served
UI_FLOW_RUN = "/v2/runs/flow-run/{id}"
# Short headers and values: a table artifact's cells never wrap in the UI (the breach itself is the stage's
# state message, and in grace-run and the report).
STAGE_COLUMNS = {"study": "study", "experiment": "exp", "total": "rows", "done_before": "resumed", "ok": "ok",
                 "failed": "failed", "other": "other", "limits": "quality", "wall_s": "wall s",
                 "rows_per_s": "rows/s", "waited_s": "waited s"}
# The server's load during each stage, from its /metrics (grace.serving.metrics), a table of its own so that
# neither fits its pane badly: "low" when the busy share of the batch slots stays below the configured share (the
# likely cause is in the stage's log line, run.json and the report's checks).
LOAD_COLUMNS = {"study": "study", "experiment": "exp", "busy_share": "busy", "running_mean": "running",
                "waiting_mean": "waiting", "kv_cache_mean": "KV cache", "generation_tokens_per_s": "out tok/s",
                "utilization_cause": "GPU use"}


def artifact_key(*parts: str) -> str:
    return "-".join(safe_name(p).lower().replace("_", "-").replace(".", "-") for p in parts)[:100]


def run_key(study_id: str | None, *parts: str) -> str:
    """`grace-<parts>`, or `grace-<study_id>-<parts>` for a named study (its own history in the index)."""
    return artifact_key("grace", *([study_id] if study_id else []), *parts)


def _stage_cell(summary: dict[str, Any], column: str) -> Any:
    value = summary.get(column)
    if column == "other":
        return counts(value)
    if column == "limits":
        return "✗ not fit" if value else "✓"
    if column in ("busy_share", "kv_cache_mean"):
        return percent(value)
    if column == "utilization_cause":
        return "low" if summary.get("low_utilization") else ("-" if summary.get("busy_share") is None else "ok")
    return value


def publish_stages(model: str, summaries: list[dict[str, Any]], study_id: str | None = None) -> None:
    create_table_artifact(
        key=run_key(study_id, model, "stages"),
        table=readable_rows({name: _stage_cell(s, c) for c, name in STAGE_COLUMNS.items()} for s in summaries),
        description=f"Grace: rows done, failed, time and waits for the server per stage of {model}",
    )
    if any(s.get("busy_share") is not None for s in summaries):  # read from the server's /metrics
        create_table_artifact(
            key=run_key(study_id, model, "load"),
            table=readable_rows({name: _stage_cell(s, c) for c, name in LOAD_COLUMNS.items()} for s in summaries),
            description=f"Grace: how busy each stage of {model} kept its server (vLLM /metrics; busy: share of the "
                        "batch slots running; 'low' below the configured share, its likely cause in the report)",
        )


def _run_tree(client: Any, root: UUID) -> list[Any]:
    """The flow run and its subflow runs (any depth)."""
    tree = [client.read_flow_run(root)]
    level = [root]
    while level:
        children = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=level)), limit=200)
        tree += children
        level = [r.id for r in children]
    return tree


def published(flow_run_id: UUID | str | None) -> dict[str, tuple[str, str]]:
    """key -> (the UI page of the latest artifact of that key made in this flow run or its subflows, the name
    of the flow run it is on). Empty when the API cannot be read: the summary then names the keys only."""
    if flow_run_id is None:
        return {}
    try:
        with get_client(sync_client=True) as client:
            tree = _run_tree(client, UUID(str(flow_run_id)))
            names = {r.id: r.name for r in tree}
            found = client.read_artifacts(artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=list(names))), limit=200)
    except Exception as exc:  # links are a convenience: the summary must still be written
        log.warning("could not read this run's artifacts for their links: %s", exc)
        return {}
    out: dict[str, tuple[str, str]] = {}
    for a in sorted(found, key=lambda a: a.created or 0):
        if a.key and a.flow_run_id is not None:
            out[a.key] = (UI_ARTIFACT.format(id=a.id), names.get(a.flow_run_id, ""))
    return out


def _worth_opening(run_dir: Path, summaries: list[dict[str, Any]], study_id: str | None,
                   on_ui: dict[str, tuple[str, str]]) -> list[ArtifactLink]:
    """The artifacts this run published, most useful first, each with its UI page when it could be read."""
    wanted = []
    if (run_dir / "report" / "report.md").exists():
        wanted.append((run_key(study_id, "report"), "the verdict per model and study (fit or not), checks, plots"))
    compare = run_dir / "compare" / "compare.json"
    if compare.exists():
        if json.loads(compare.read_text()).get("ranking"):
            wanted.append((run_key(study_id, "compare"), "the models ranked by how human-like they are"))
        wanted.append((run_key(study_id, "compare", "details"), "the comparison with the humans in full, plots"))
    models = list(dict.fromkeys([*(s["model"] for s in summaries),
                                 *(p.parent.parent.name for p in sorted(run_dir.glob("*/preflight/preflight.json")))]))
    for model in models:
        wanted.append((run_key(study_id, model, "preflight"), f"the preflight checks of {model}"))
        wanted.append((run_key(study_id, model, "stages"), f"rows done, failed and time per stage of {model}"))
        wanted.append((run_key(study_id, model, "load"), f"how busy each stage kept the server of {model}"))
    out = []
    for key, what in wanted:
        url, on = on_ui.get(key, ("", ""))
        if on_ui and not url:
            continue  # not published by this run (e.g. no preflight)
        out.append(ArtifactLink(key=key, what=what, url=url, on=on))
    return out


def publish_run(run_dir: Path, summaries: list[dict[str, Any]], failures: dict[str, str], verdict: str = "",
                study_id: str | None = None) -> None:
    """The run's summary artifact; it leads with the verdict (grace.report.verdict) and the trial viewer."""
    lead = [f"**Verdict:** {md_escape(verdict)}"] if verdict else []
    on_ui = published(current_run.id)
    run_name = current_run.name or ""
    links = _worth_opening(run_dir, summaries, study_id, on_ui)
    for link in links:  # where each lives: this run's Artifacts tab, or its model's subflow's
        if link.on and link.on != run_name:
            link.what += f" (on the `{link.on}` subflow run's Artifacts tab)"
    create_markdown_artifact(key=run_key(study_id, "run"),
                             markdown=run_summary(run_dir, summaries, failures, links, lead=lead,
                                                  viewer_url=served_url(run_dir)),
                             description=f"Grace run {run_dir.name}")
