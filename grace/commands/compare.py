"""`grace compare RUN_DIR`: compare every model in a run folder with the published (or your own) human data;
`grace compare RUN_A RUN_B ...`: several runs side by side (grace/compare/runs.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from grace.commands.common import add_config_option, config_from
from grace.compare.metrics import DEFAULT_BOOTSTRAP, DEFAULT_SEED
from grace.compare.report import compare_run, fitness, table_lines
from grace.compare.runs import compare_runs
from grace.studies.registry import STUDIES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare a run's models with the human data (writes RUN_DIR/compare/); "
                                       "several runs: side by side")
    p.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR",
                   help="a run folder: RUN_DIR/<model>/<study>/...; two or more are compared side by side")
    p.add_argument("--human", type=Path, action="append", default=None, metavar="FILE",
                   help="your own human-data CSV (repeatable; format in docs/compare.md); replaces the shipped "
                        "figures of the same kind; the authors' raw study 2 file (with subid) also gives the "
                        "humans' noise ceiling")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: RUN_DIR/compare; for several "
                                                          "runs, compare-A-vs-B beside the first)")
    p.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="bootstrap seed")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="significance level of the findings' one-sided tests (study 1 and 2)")
    p.add_argument("--no-plots", action="store_true", help="skip the PNG figures")
    add_config_option(p)
    p.set_defaults(func=compare)


def compare(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    options = {"n_boot": args.bootstrap, "seed": args.seed, "alpha": args.alpha, "plots": not args.no_plots}
    if len(args.run_dirs) > 1:
        first = Path(args.run_dirs[0])
        out = args.out or first.parent / ("compare-" + "-vs-".join(Path(d).name for d in args.run_dirs))
        path, _ = compare_runs([Path(d) for d in args.run_dirs], STUDIES.values(), Path(out), args.human, cfg=cfg,
                               **options)
        print(path.read_text(encoding="utf-8"))
        print(f"wrote {path}, {path.with_suffix('.json')}")
        return 0
    run_dir = Path(args.run_dirs[0])
    rep = compare_run(run_dir, STUDIES.values(), args.human, cfg=cfg, out_dir=args.out, **options)
    print("\n".join(table_lines(rep.ranking, STUDIES.values(), rep.references, fitness(run_dir), links=False)))
    for note in rep.notes:
        print(f"note: {note}")
    out = Path(args.out) if args.out else run_dir / "compare"
    print(f"wrote {out / 'compare.md'}, {out / 'compare.json'}" + "".join(f", {p}" for p in rep.plots))
    print(f"comparison took {rep.seconds:.2f}s ({rep.seconds_plots:.2f}s of it for the plots)")
    return 0
