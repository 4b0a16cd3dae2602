"""The run summary shown in the Prefect UI: rows per stage, what failed, where the results live and which
artifacts to open - with no link a browser cannot follow (no `file://`, no path of the worker's disk as a link).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from grace.ui_format import Location, counts, md_escape, md_table, results_location, sig

FILE_SUFFIXES = {".jsonl", ".parquet", ".csv", ".md", ".png", ".json", ".log"}


def folder_rows(run_dir: Path) -> list[list[str]]:
    """One row per folder of the run (relative to it): its result files by name, PNGs counted."""
    by_folder: dict[str, list[str]] = {}
    for p in sorted(run_dir.rglob("*")):
        if p.is_file() and p.suffix in FILE_SUFFIXES:
            rel = p.parent.relative_to(run_dir).as_posix()
            by_folder.setdefault("./" if rel == "." else f"{rel}/", []).append(p.name)
    rows = []
    for folder, names in sorted(by_folder.items()):
        pngs = [n for n in names if n.endswith(".png")]
        shown = [n for n in names if not n.endswith(".png")] + ([f"{len(pngs)} PNG plot(s)"] if pngs else [])
        rows.append([f"`{folder}`", ", ".join(shown)])
    return rows


def run_summary(run_dir: Path, summaries: Sequence[Mapping[str, Any]], failures: Mapping[str, str],
                artifacts: Sequence[tuple[str, str]] = (), lead: Sequence[str] = (),
                location: Location | None = None) -> str:
    """The Markdown of the run's summary artifact.

    `artifacts`: (key, what it shows) of the artifacts worth opening; `lead`: lines to put first (a verdict).
    """
    run_dir = Path(run_dir)
    loc = location or results_location(run_dir)
    lines = [f"# Grace run `{run_dir.name}`", "", *lead]
    if lead:
        lines.append("")
    lines.append(f"Results: {loc.where}.")
    if loc.fetch:
        lines.append(f"Copy them to your machine with `{loc.fetch}`.")
    lines += ["", "## Stages", ""]
    lines += md_table(
        ["model", "study", "experiment", "rows", "ok", "failed", "other", "wall s", "rows/s", "waited for the server"],
        [[str(s.get("model", "")), str(s.get("study", "")), str(s.get("experiment", "")), sig(s.get("total")),
          sig(s.get("ok")), sig(s.get("failed")), counts(s.get("other")), sig(s.get("wall_s")),
          sig(s.get("rows_per_s")),
          f"{sig(s.get('waited_s'))} s: {s.get('wait_reasons')}" if s.get("waited_s") or s.get("server_stops")
          else "-"] for s in summaries],
        empty="No stage finished" + (": every model failed (below)." if failures else "."))
    if failures:
        lines += ["", "## Failed", "", *[f"- **{md_escape(m)}**: {md_escape(why)}" for m, why in failures.items()]]
    if artifacts:
        lines += ["", "## Open next", "", "Artifacts of this flow run (its Artifacts tab, or Artifacts in the menu):",
                  "", *[f"- `{key}`: {what}" for key, what in artifacts]]
    lines += ["", "## Files in the run folder", "",
              *md_table(["folder", "files"], folder_rows(run_dir), empty="The run folder holds no result files yet.")]
    return "\n".join(lines) + "\n"
