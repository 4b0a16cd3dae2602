"""Prefect artifacts: a table of rows done / failed / time per model and stage, and the run's summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from grace.report.summary import run_summary
from grace.run import safe_name
from grace.ui_format import counts, md_escape, percent, readable_rows

STAGE_COLUMNS = {"study": "study", "experiment": "experiment", "total": "rows", "done_before": "done before",
                 "ok": "ok", "failed": "failed", "other": "other", "wall_s": "wall s", "rows_per_s": "rows/s",
                 "waited_s": "waited for the server s", "wait_reasons": "why it waited",
                 # the server's load during the stage, from its /metrics (grace.serving.metrics)
                 "busy_share": "server busy (of batch slots)", "running_mean": "requests running (mean)",
                 "waiting_mean": "requests waiting (mean)", "active_s": "s with requests running",
                 "kv_cache_mean": "KV cache used (mean)", "generation_tokens_per_s": "output tok/s",
                 "utilization_cause": "low utilization: likely cause"}
SHARES = ("busy_share", "kv_cache_mean")


def artifact_key(*parts: str) -> str:
    return "-".join(safe_name(p).lower().replace("_", "-").replace(".", "-") for p in parts)[:100]


def _stage_cell(summary: dict[str, Any], column: str) -> Any:
    value = summary.get(column)
    if column == "other":
        return counts(value)
    if column in SHARES:
        return percent(value)
    if column == "utilization_cause":
        return value if summary.get("low_utilization") else ("-" if summary.get("busy_share") is None else "ok")
    return value


def publish_stages(model: str, summaries: list[dict[str, Any]]) -> None:
    create_table_artifact(
        key=artifact_key("grace", model, "stages"),
        table=readable_rows({name: _stage_cell(s, c) for c, name in STAGE_COLUMNS.items()} for s in summaries),
        description=f"Grace: rows done, failed, time, waits for the server and how busy it was, per stage of {model}",
    )


def _worth_opening(run_dir: Path, summaries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(key, what it shows) of the artifacts this run published, most useful first."""
    out = []
    if (run_dir / "report" / "report.md").exists():
        out.append((artifact_key("grace", "report"), "the verdict per model and study (fit or not), checks, plots"))
    compare = run_dir / "compare" / "compare.json"
    if compare.exists():
        if json.loads(compare.read_text()).get("ranking"):
            out.append((artifact_key("grace", "compare"), "the models ranked by how human-like they are"))
        out.append((artifact_key("grace", "compare", "details"), "the comparison with the humans in full, plots"))
    for model in dict.fromkeys(s["model"] for s in summaries):
        out.append((artifact_key("grace", model, "stages"), f"rows done, failed and time per stage of {model}"))
    return out


def publish_run(run_dir: Path, summaries: list[dict[str, Any]], failures: dict[str, str], verdict: str = "") -> None:
    """The run's summary artifact; it leads with the verdict (grace.report.verdict)."""
    lead = [f"**Verdict:** {md_escape(verdict)}"] if verdict else []
    create_markdown_artifact(key=artifact_key("grace", "run"),
                             markdown=run_summary(run_dir, summaries, failures, _worth_opening(run_dir, summaries),
                                                  lead=lead),
                             description=f"Grace run {run_dir.name}")
