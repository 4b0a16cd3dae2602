"""`grace compare RUN_DIR`: compare every model in a run folder with the published (or your own) human data."""

from __future__ import annotations

import argparse
from pathlib import Path

from grace.commands.common import add_config_option, config_from
from grace.compare.metrics import DEFAULT_BOOTSTRAP, DEFAULT_SEED
from grace.compare.report import compare_run, table_lines
from grace.studies.registry import STUDIES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare a run's models with the human data (writes RUN_DIR/compare/)")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder: RUN_DIR/<model>/<study>/...")
    p.add_argument("--human", type=Path, action="append", default=None, metavar="FILE",
                   help="your own human-data CSV (repeatable; format in docs/compare.md); replaces the shipped "
                        "figures of the same kind; the authors' raw study 2 file (with subid) also gives the "
                        "humans' noise ceiling")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: RUN_DIR/compare)")
    p.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="bootstrap seed")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="significance level of the findings' one-sided tests (study 1 and 2)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    add_config_option(p)
    p.set_defaults(func=compare)


def compare(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    rep = compare_run(args.run_dir, STUDIES.values(), args.human, cfg=cfg, out_dir=args.out, n_boot=args.bootstrap,
                      seed=args.seed, alpha=args.alpha, plots=not args.no_plots)
    print("\n".join(table_lines(rep.ranking, STUDIES.values(), rep.references)))
    for note in rep.notes:
        print(f"note: {note}")
    out = Path(args.out) if args.out else Path(args.run_dir) / "compare"
    print(f"wrote {out / 'compare.md'}, {out / 'compare.json'}" + "".join(f", {p}" for p in rep.plots))
    print(f"comparison took {rep.seconds:.2f}s ({rep.seconds_plots:.2f}s of it for the plots)")
    return 0
