"""The trial viewer over HTTP, so a link in the Prefect UI opens it in one click: every run folder under a root
(`grace view --root results`, started by scripts/prefect-up.sh beside the Prefect server), or the runs given.

It serves the viewer pages only, never the run folders' files: `/` lists the runs (pick several to see them
side by side), `/<run>/trials.html` is that run's viewer, built from its files when asked (so it shows a run
still in progress, and a run folder written before the viewer existed), `/trials.html?runs=A&runs=B` is one
viewer over several runs. Nothing is written into the run folders.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from html import escape
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from grace.errors import DataError
from grace.view.links import VIEWER
from grace.view.page import viewer_html
from grace.view.rows import STAGE_FILES

DEFAULT_PORT = 4300
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MAX_DEPTH = 3  # how deep under the root a run folder may lie (results/<run>, or a test's tmp/<dir>/<run>)


def is_run(folder: Path) -> bool:
    """A run folder: run.json, or <model>/<study>/ stage files (a folder written by `grace query` and friends)."""
    if (folder / "run.json").is_file():
        return True
    return any(f.is_file() for name in STAGE_FILES.values() for f in folder.glob(f"*/*/{name}"))


def find_runs(root: Path, depth: int = _MAX_DEPTH) -> list[Path]:
    """Run folders under `root` (not inside one another), newest first."""
    found: list[Path] = []

    def walk(d: Path, level: int) -> None:
        for child in sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if is_run(child):
                found.append(child)
            elif level < depth:
                walk(child, level + 1)

    if root.is_dir():
        walk(root, 1)
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _stamp(run_dir: Path) -> float:
    """The newest change among the files the viewer reads (a cached page is rebuilt after it)."""
    files = [run_dir / "report" / "report.json", *(p for name in STAGE_FILES.values()
                                                     for p in run_dir.glob(f"**/{name}"))]
    return max((f.stat().st_mtime for f in files if f.exists()), default=0.0)


class Pages:
    """The viewer pages of the runs under `root`, built on request and kept until their files change."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._cache: dict[tuple[str, ...], tuple[float, str]] = {}
        self._lock = threading.Lock()

    def run(self, rel: str) -> Path | None:
        """The run folder at `rel` under the root, or None when `rel` names none (or leaves the root)."""
        parts = [p for p in rel.strip("/").split("/") if p]
        if not parts or len(parts) > _MAX_DEPTH or not all(_SEGMENT.match(p) for p in parts):
            return None
        d = self.root.joinpath(*parts).resolve()
        return d if d.is_relative_to(self.root) and d.is_dir() and is_run(d) else None

    def viewer(self, runs: list[Path]) -> str:
        key = tuple(str(r) for r in runs)
        stamp = max(_stamp(r) for r in runs)
        with self._lock:
            hit = self._cache.get(key)
            if hit and hit[0] >= stamp:
                return hit[1]
        html = viewer_html(runs)
        with self._lock:
            self._cache[key] = (stamp, html)
        return html

    def rel(self, run: Path) -> str:
        return run.relative_to(self.root).as_posix()

    def index(self) -> str:
        rows = []
        for run in find_runs(self.root):
            rel = self.rel(run)
            status, verdict = "", ""
            try:
                meta = json.loads((run / "run.json").read_text(encoding="utf-8"))
                status = str(meta.get("status", ""))
                verdict = str((meta.get("summary") or {}).get("verdict", ""))
            except (OSError, ValueError):
                pass
            rows.append(f'<tr><td><input type="checkbox" name="runs" value="{escape(rel)}"></td>'
                        f'<td><a href="/{quote(rel)}/{VIEWER}">{escape(rel)}</a></td><td>{escape(status)}</td>'
                        f"<td>{escape(verdict)}</td></tr>")
        body = ("<table><thead><tr><th></th><th>run</th><th>status</th><th>verdict</th></tr></thead><tbody>"
                + "".join(rows) + "</tbody></table>" if rows else "<p>No run folders here yet.</p>")
        return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Grace runs</title>'
                "<style>body{font-family:system-ui,sans-serif;margin:20px}td,th{padding:4px 8px;text-align:left;"
                "border-bottom:1px solid #ddd;overflow-wrap:anywhere}</style></head><body>"
                f"<h1>Grace runs in <code>{escape(str(self.root))}</code></h1>"
                f'<form action="/{VIEWER}" method="get">{body}'
                "<p><button type=submit>Open the checked runs side by side</button></p></form></body></html>")


def handler(pages: Pages, fixed: list[Path] | None = None) -> type[BaseHTTPRequestHandler]:
    """The request handler: `fixed` runs at `/` (grace view RUN...), else the root's index and runs."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "grace-view"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            return None

        def _send(self, status: HTTPStatus, body: str, kind: str = "text/html; charset=utf-8") -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            url = urlsplit(self.path)
            path = url.path
            if path == "/favicon.ico":  # the browser asks; there is none
                self.send_response(HTTPStatus.NO_CONTENT)
                self.end_headers()
                return None
            try:
                if fixed is not None:
                    if path in ("/", f"/{VIEWER}"):
                        return self._send(HTTPStatus.OK, pages.viewer(fixed))
                elif path == "/":
                    return self._send(HTTPStatus.OK, pages.index())
                elif path == f"/{VIEWER}":
                    runs = [pages.run(r) for r in parse_qs(url.query).get("runs", [])]
                    if runs and all(r is not None for r in runs):
                        return self._send(HTTPStatus.OK, pages.viewer([r for r in runs if r is not None]))
                elif path.endswith(f"/{VIEWER}"):
                    run = pages.run(path.removesuffix(f"/{VIEWER}"))
                    if run is not None:
                        return self._send(HTTPStatus.OK, pages.viewer([run]))
            except (OSError, DataError) as e:  # a file gone, or a bad line (grace.checkpoint's reading policy)
                return self._send(HTTPStatus.INTERNAL_SERVER_ERROR, f"could not read the run: {escape(str(e))}",
                                  "text/plain; charset=utf-8")
            self._send(HTTPStatus.NOT_FOUND, "no such run here (the index at / lists them)",
                       "text/plain; charset=utf-8")

    return Handler


def make_server(root: Path, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                fixed: list[Path] | None = None) -> ThreadingHTTPServer:
    return ThreadingHTTPServer((host, port), handler(Pages(root), fixed))


def serve(root: Path, host: str, port: int, fixed: list[Path] | None = None,
          ready: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted; `ready` hears the base URL once the port is bound."""
    with make_server(root, host, port, fixed) as httpd:
        bound_host, bound_port = httpd.server_address[:2]
        if ready:
            ready(f"http://{bound_host!s}:{bound_port}")
        httpd.serve_forever()
