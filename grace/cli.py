"""The `grace` command line: one verb per stage. Exit 0 ok, 1 failed run, 2 bad input or config."""

from __future__ import annotations

import argparse
import importlib
import sys

from grace.errors import GraceError

# Each module in grace/commands registers its verbs: a new stage plugs in by adding its module here.
COMMAND_MODULES = [
    "grace.commands.checks",
    "grace.commands.serve",
    "grace.commands.prefetch",
    "grace.commands.preflight",
    "grace.commands.query",
    "grace.commands.score",
    "grace.commands.extract",
    "grace.commands.report",
    "grace.commands.compare",
    "grace.commands.view",
    "grace.commands.manifests",
    "grace.commands.cleanup",
    "grace.commands.archive",
    "grace.commands.plan",
    "grace.commands.bench",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grace", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()  # the --study help lists the registered studies: a broken plug-in is said here
    except GraceError as e:
        print(f"grace: error: {e}", file=sys.stderr)
        return e.exit_code
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except GraceError as e:
        print(f"grace {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"grace {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
