"""`grace query`: Experiment 1 (free-text answers) for one model and study."""

from __future__ import annotations

import argparse

from grace.commands.common import (
    add_trial_options,
    config_from,
    default_out,
    load_trials,
    print_notes,
    progress_bar,
    serving,
)
from grace.query import run_exp1_sync
from grace.run import RunFolder


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("query", help="Experiment 1: ask the model each trial (resumable)")
    add_trial_options(p)
    p.add_argument("--max-tokens", type=int, default=None, help="override the experiment's max_tokens")
    p.set_defaults(func=query)


def query(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    model = cfg.model(args.model)
    exp = cfg.experiment(args.study, "exp1")
    if args.max_tokens:
        exp = exp.model_copy(update={"sampling": exp.sampling.model_copy(update={"max_tokens": args.max_tokens})})
    study, trials, path = load_trials(cfg, args)
    run = RunFolder(args.out or default_out("query", args))
    out = run.study_dir(model.name, study.name)
    print(f"{len(trials)} trials from {path} -> {out}")
    with serving(cfg, args, run.root.name, seed=exp.sampling.seed) as ep:
        total = len(trials) * exp.sampling.replications
        with progress_bar(f"exp1 {model.name} {study.name}", total) as advance:
            res = run_exp1_sync(ep, study, trials, exp, out, concurrency=args.concurrency, progress=advance)
    print(f"done: {res.ok} ok, {res.failed} failed, {res.other or 'no other statuses'}; "
          f"{res.total - res.skipped} requested in {res.wall_s:.1f}s ({res.rps:.2f} trials/s, "
          f"concurrency {res.concurrency}); skipped {res.skipped} already done")
    print_notes(res)
    return 1 if res.failed else 0
