"""The run summary shown in the Prefect UI: rows per stage, what failed, where the results live and which
artifacts to open - with no link a browser cannot follow (no `file://`, no path of the worker's disk as a link).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grace.ui_format import Location, counts, md_escape, md_table, results_location, sig
from grace.view.links import VIEWER

FILE_SUFFIXES = {".jsonl", ".parquet", ".csv", ".md", ".png", ".json", ".log", ".html", ".R"}


@dataclass
class ArtifactLink:
    """An artifact worth opening: its key, what it shows, its page in the UI ("" when unknown), the run it is on."""

    key: str
    what: str
    url: str = ""
    on: str = ""


def preflight_lines(run_dir: Path) -> list[str]:
    """One line per model that ran a preflight: passed, or failed with the reason (RUN/<model>/preflight/)."""
    out = []
    for path in sorted(Path(run_dir).glob("*/preflight/preflight.json")):
        try:
            pf = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        model = path.parent.parent.name
        warnings = [c for c in pf.get("checks", []) if not c.get("passed") and not c.get("fatal", True)]
        if pf.get("passed"):
            note = "; ".join(f"{c['name']}: {c['detail']}" for c in warnings)
            out.append(f"- **{md_escape(model)}**: ✓ passed in {sig(pf.get('wall_s'))} s"
                       + (f" (noted: {md_escape(note)})" if note else ""))
        else:
            out.append(f"- **{md_escape(model)}**: ✗ **stopped**: {md_escape(str(pf.get('reason', '')))}")
    return out


def viewer_line(loc: Location, viewer_url: str | None) -> str:
    """Where the trial viewer is: a link when a `grace view` serves the run, else the file and the command."""
    what = "every trial's prompt as sent, reply, extracted answer and Exp 2 distribution, filtered and sorted"
    if viewer_url:
        return f"**Trials:** [open the trial viewer]({viewer_url}): {what}."
    serve = f", or serve it with `grace view {loc.folder}`" if loc.folder else ""
    return (f"**Trials:** the trial viewer is `{VIEWER}` in the run folder: {what}. Open the file in a browser "
            f"(nothing to install; it works offline){serve}.")


ANALYSIS_LINE = ("**Tables:** `analysis/` in the run folder holds every model's rows per study and experiment "
                 "(CSV and Parquet) for your own analysis, their codebook (`analysis/README.md`) and `grace.R`, "
                 "which recomputes the comparison's figures from them.")


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
                artifacts: Sequence[ArtifactLink] = (), lead: Sequence[str] = (),
                location: Location | None = None, viewer_url: str | None = None) -> str:
    """The Markdown of the run's summary artifact.

    `artifacts`: the artifacts worth opening; `lead`: lines to put first (a verdict); `viewer_url`: the trial
    viewer's web address when one serves this run.
    """
    run_dir = Path(run_dir)
    loc = location or results_location(run_dir)
    lines = [f"# Grace run `{run_dir.name}`", "", *lead]
    if lead:
        lines.append("")
    lines += [viewer_line(loc, viewer_url), ""]
    if (run_dir / "analysis" / "README.md").exists():
        lines += [ANALYSIS_LINE, ""]
    lines.append(f"Results: {loc.where}.")
    if loc.fetch:
        lines.append(f"Copy them to your machine with `{loc.fetch}`, then open `{VIEWER}` in it.")
    if artifacts:
        lines += ["", "## Open next", ""]
        lines += [f"- [{a.key}]({a.url}): {a.what}" if a.url else f"- `{a.key}`: {a.what}" for a in artifacts]
    pre = preflight_lines(run_dir)
    if pre:
        lines += ["", "## Preflight", "", *pre]
    lines += ["", "## Stages", ""]
    lines += md_table(
        ["model", "study", "exp", "rows", "ok", "failed", "other", "wall s", "rows/s", "waited s"],
        [[str(s.get("model", "")), str(s.get("study", "")), str(s.get("experiment", "")), sig(s.get("total")),
          sig(s.get("ok")), sig(s.get("failed")), counts(s.get("other")), sig(s.get("wall_s")),
          sig(s.get("rows_per_s")), sig(s.get("waited_s")) if s.get("waited_s") or s.get("server_stops") else "-"]
         for s in summaries],
        empty="No stage finished" + (": every model failed (below)." if failures else "."))
    # long text under the table, not in it: one of Prefect's two UIs never wraps a table cell
    for s in summaries:
        where = f"- {md_escape(str(s.get('model')))} {s.get('study')} {s.get('experiment')}"
        if s.get("limits"):
            lines.append(f"{where}: ✗ over a data-quality limit: {md_escape('; '.join(s['limits']))}")
        if s.get("waited_s") or s.get("server_stops"):
            lines.append(f"{where}: waited for the server: {md_escape(str(s.get('wait_reasons')))}")
    if failures:
        lines += ["", "## Failed", "", *[f"- **{md_escape(m)}**: {md_escape(why)}" for m, why in failures.items()]]
    rows = folder_rows(run_dir)
    lines += ["", "## Files in the run folder", ""]
    lines += [f"- {folder}: {files}" for folder, files in rows] or ["_The run folder holds no result files yet._"]
    return "\n".join(lines) + "\n"
