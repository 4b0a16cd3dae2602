"""`grace bench`: run the benchmarks (benchmarks/ in the checkout) and print the table; see docs/benchmarks.md."""

from __future__ import annotations

import argparse
import sys

from grace.errors import UserInputError
from grace.paths import project_root


def _importable() -> bool:
    root = project_root()
    if not (root / "benchmarks" / "runner.py").exists():
        return False
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return True


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks: Exp 1/Exp 2 throughput vs the server's limit, Prefect, memory",
                       description="Run the benchmarks on the local models; print the table, write JSON to "
                                   "benchmarks/results/ (docs/benchmarks.md).")
    if _importable():
        from benchmarks.options import add_arguments

        add_arguments(p)
    p.set_defaults(func=bench)


def bench(args: argparse.Namespace) -> int:
    if not _importable():
        raise UserInputError(f"{project_root()}/benchmarks not found: `grace bench` runs from a checkout of Grace")
    from benchmarks.runner import run

    return run(args)
