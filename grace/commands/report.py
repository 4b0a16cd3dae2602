"""`grace report RUN_DIR`: checks, fit / not-fit verdicts and plots for every model x study of a run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from grace.studies.registry import STUDIES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="data-quality report of a run folder (Markdown, JSON, PNG) and its all-models "
                                      "tables for the lab's analysis (RUN_DIR/analysis/)")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="results/<run-id>")
    p.set_defaults(func=report)


def report(args: argparse.Namespace) -> int:
    # imported when the verb runs: the report draws with matplotlib, which the other verbs (grace query) never load
    from grace.analysis import write_analysis
    from grace.report.build import build_report

    path = build_report(args.run_dir, STUDIES.values())
    data = json.loads((path.parent / "report.json").read_text(encoding="utf-8"))
    for model, studies in data["models"].items():
        for study, r in studies.items():
            verdict = "fit" if r["fit"] else "NOT FIT: " + "; ".join(r["reasons"])
            print(f"{model} / {study}: {verdict}")
    print(f"report: {path}")
    for p in sorted(path.parent.glob("*.png")):
        print(f"plot: {p}")
    tables = write_analysis(args.run_dir, STUDIES.values())
    print(tables.line())
    for note in tables.notes:
        print(f"note: {note}")
    return 0
