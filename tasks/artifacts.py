"""Prefect artifacts: a table of rows done / failed / time per model and stage, and links to the files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from grace.run import safe_name


def artifact_key(*parts: str) -> str:
    return "-".join(safe_name(p).lower().replace("_", "-").replace(".", "-") for p in parts)[:100]


def publish_stages(model: str, summaries: list[dict[str, Any]]) -> None:
    cols = ["study", "experiment", "total", "done_before", "ok", "failed", "other", "wall_s", "rows_per_s",
            "waited_s", "server_waits", "server_stops", "wait_reasons"]
    create_table_artifact(
        key=artifact_key("grace", model, "stages"),
        table=[{c: s.get(c) for c in cols} for s in summaries],
        description=f"Grace: rows done, failed and time per stage for {model}",
    )


def publish_run(run_dir: Path, summaries: list[dict[str, Any]], failures: dict[str, str]) -> None:
    lines = [f"# Grace run `{run_dir.name}`", "", f"Results folder: `{run_dir.resolve()}`", ""]
    lines += ["| model | study | experiment | ok | failed | other | wall s | waited for the server |",
              "|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        waited = (f"{s['waited_s']} s: {s['wait_reasons']}" if s.get("waited_s") or s.get("server_stops") else "-")
        lines.append(f"| {s['model']} | {s['study']} | {s['experiment']} | {s['ok']} | {s['failed']} | "
                     f"{s['other']} | {s['wall_s']} | {waited} |")
    if failures:
        lines += ["", "## Failed models", ""] + [f"- **{m}**: {why}" for m, why in failures.items()]
    lines += ["", "## Files", ""]
    for p in sorted(run_dir.rglob("*")):
        if p.is_file() and p.suffix in {".jsonl", ".parquet", ".csv", ".md", ".png", ".json"}:
            lines.append(f"- [{p.relative_to(run_dir)}]({p.resolve().as_uri()})")
    create_markdown_artifact(key=artifact_key("grace", "run"), markdown="\n".join(lines),
                             description=f"Grace run {run_dir.name}")
