"""`grace view RUN [RUN ...]`: the trial viewer of one or more run folders (a self-contained HTML file), served
on this machine for a browser; `grace view --root results` serves every run under a folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from grace.errors import UserInputError
from grace.view.links import VIEWER
from grace.view.page import write_viewer
from grace.view.serve import DEFAULT_PORT, is_run, serve


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("view", help="the trial viewer: every trial's prompt, reply, extraction and Exp 2 "
                                    "distribution, filtered and sorted in a browser")
    p.add_argument("runs", type=Path, nargs="*", metavar="RUN",
                   help="run folder(s); several open side by side in one viewer")
    p.add_argument("--root", type=Path, default=None,
                   help="serve every run folder under this folder instead (an index at /, a viewer per run)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"where to write the viewer (default: RUN/{VIEWER}; for several runs, beside the first: "
                        "trials-A+B.html)")
    p.add_argument("--no-serve", action="store_true", help="write the file and stop (open it in any browser)")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to serve on (default {DEFAULT_PORT})")
    p.set_defaults(func=view)


def _print_url(url: str) -> None:
    print(f"trial viewer at {url}/ (Ctrl-C stops)", flush=True)


def view(args: argparse.Namespace) -> int:
    if args.root is not None:
        if args.runs:
            raise UserInputError("give run folders or --root, not both")
        if not args.root.is_dir():
            raise UserInputError(f"{args.root}: not a folder")
        serve(args.root, args.host, args.port, ready=_print_url)
        return 0
    if not args.runs:
        raise UserInputError("name a run folder (grace view results/<run-id>), or --root FOLDER")
    for run in args.runs:
        if not run.is_dir() or not is_run(run):
            raise UserInputError(f"{run}: not a run folder (no run.json and no <model>/<study>/*.jsonl)")
    runs = [r.resolve() for r in args.runs]
    default = runs[0] / VIEWER if len(runs) == 1 else runs[0].parent / f"trials-{'+'.join(r.name for r in runs)}.html"
    target = write_viewer(runs[0], args.out or default, others=runs[1:])
    print(f"wrote {target} (opens in any browser, offline)")
    if not args.no_serve:
        serve(runs[0].parent, args.host, args.port, fixed=runs, ready=_print_url)
    return 0
