"""The trial viewer as one self-contained HTML file: the page, its script and style, and every trial of one or
more run folders inside it (gzip, base64), so it opens from an archived run folder on any machine, with no
Grace, no server and no network (its Content-Security-Policy forbids every fetch).

Why a file and not a tool such as Datasette behind `grace view`: the run folder is where the researcher is
(a laptop after `grace archive`, an e-mail attachment, the cluster's PVC), and a file needs nothing installed
there; what a researcher reads here is a trial (the messages as sent, a reply several hundred words long, a
distribution over options), which a row-and-column view of tables shows poorly; and a link carrying a filter
(`trials.html#model=m&finish=length`) lets the report's numbers point at their trials without a query
language. `grace view` serves the same page over HTTP for a one-click link from the Prefect UI.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from datetime import UTC, datetime
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

from grace.checkpoint import atomic_path
from grace.view.links import CHECK_FILTERS, VIEWER, fragment
from grace.view.rows import Unreadable, run_rows

_DATA = re.compile(r'<script id="grace-data" type="application/gzip-base64">([^<]*)</script>')


def _asset(name: str) -> str:
    return resources.files("grace.view").joinpath("assets", name).read_text(encoding="utf-8")


def _reasons(model: str, study: str, checks: list[dict[str, Any]]) -> list[dict[str, str]]:
    out = []
    for c in checks:
        if c.get("fatal") and not c.get("passed"):
            extra = CHECK_FILTERS.get((str(c.get("experiment")), str(c.get("name"))), {})
            out.append({"text": f"{c.get('experiment')}: {c.get('detail')}",
                        "link": fragment(model=model, study=study, phase="study", **extra)})
    return out


def verdicts(run_dir: Path) -> list[dict[str, Any]]:
    """Per model and study of the run's data-quality report: fit or not, each failed check with a link to its
    trials; a model stopped at its preflight with the preflight's failed checks."""
    path = Path(run_dir) / "report" / "report.json"
    if not path.exists():
        return []
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    out = []
    for model, pf in sorted((report.get("preflight") or {}).items()):
        if not pf.get("passed"):
            reasons = [{"text": f"preflight {c['name']}: {c['detail']}",
                        "link": fragment(model=model, phase="preflight",
                                         **{k: v for k, v in CHECK_FILTERS.get(("preflight", c["name"]), {}).items()
                                            if k != "phase"})}
                       for c in pf.get("checks", []) if c.get("fatal", True) and not c.get("passed")]
            out.append({"model": model, "study": "all", "fit": False, "reasons": reasons,
                        "link": fragment(model=model, phase="preflight")})
    for model, studies in sorted((report.get("models") or {}).items()):
        for study, r in sorted(studies.items()):
            out.append({"model": model, "study": study, "fit": bool(r.get("fit")),
                        "reasons": _reasons(model, study, r.get("checks") or []),
                        "link": fragment(model=model, study=study, phase="study")})
    return out


def _shown(path: Path, run_dirs: list[Path]) -> str:
    """A stage file's path from its run folder's parent: `run/model/study/exp1.jsonl`."""
    for d in run_dirs:
        if path.is_relative_to(d):
            return path.relative_to(d.parent).as_posix()
    return str(path)


def payload(run_dirs: list[Path]) -> dict[str, Any]:
    unreadable: list[Unreadable] = []
    rows: list[dict[str, Any]] = []
    runs = []
    for d in run_dirs:
        rows += run_rows(d, unreadable)
        runs.append({"name": d.name, "verdicts": verdicts(d)})
    names = ", ".join(d.name for d in run_dirs)
    tables = [d.name for d in run_dirs if (d / "analysis" / "README.md").exists()]
    return {
        "title": f"Grace trials: {names}",
        "subtitle": f"{len(rows)} trials of {len({(r['run'], r['model']) for r in rows})} model run(s); written "
                    f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by grace view. Everything on this page is "
                    "inside this file." + (f" The same trials as tables for R or pandas: analysis/ in the run "
                                           f"folder{'s' if len(tables) > 1 else ''} ({', '.join(tables)}), with their "
                                           "codebook (analysis/README.md) and grace.R." if tables else ""),
        "runs": runs, "rows": rows,
        "unreadable": [{"path": _shown(Path(u.path), run_dirs), "lines": u.lines} for u in unreadable],
    }


def encode(data: dict[str, Any]) -> str:
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")
    return base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")


def render(data: dict[str, Any]) -> str:
    """The page with `data` inside it."""
    title = escape(str(data["title"]))
    return (_asset("viewer.html").replace("__TITLE__", title).replace("__CSS__", _asset("viewer.css"))
            .replace("__JS__", _asset("viewer.js")).replace("__DATA__", encode(data)))


def read_payload(html: str) -> dict[str, Any]:
    """The data inside a viewer page (what its script decodes): for tests and tools."""
    m = _DATA.search(html)
    if m is None:
        raise ValueError("not a Grace trial viewer page (no grace-data block)")
    return dict(json.loads(gzip.decompress(base64.b64decode(m[1]))))


def viewer_html(run_dirs: list[Path]) -> str:
    return render(payload([Path(d) for d in run_dirs]))


def write_viewer(run_dir: Path, target: Path | None = None, others: list[Path] | None = None) -> Path:
    """Write the viewer of `run_dir` (and `others` beside it) to `target`, by default RUN_DIR/trials.html."""
    run_dir = Path(run_dir)
    target = Path(target) if target else run_dir / VIEWER
    html = viewer_html([run_dir, *(others or [])])
    with atomic_path(target) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return target
