"""`grace plan`: planned GPU-hours of the full study per model and profile; `--run DIR`: actual hours of a run.

The verb keeps its name; the estimate lives in grace/gpu_hours.py (a run's plan is grace.pipeline's Plan)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from grace.commands.common import add_config_option, config_from
from grace.config import PROFILES, Config, ProfileName
from grace.errors import UserInputError
from grace.gpu_hours import (
    CHARS_PER_TOKEN,
    LOCAL_STARTUP_S,
    PREFILL_WEIGHT,
    STARTUP_S,
    HoursEstimate,
    Measured,
    StudyLoad,
    actual_rows,
    estimate_row,
    load_with,
    measure_run,
    pooled,
)
from grace.studies.registry import get_study


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="GPU-hours: planned for the full study, or actual for a run folder")
    add_config_option(p)
    p.add_argument("--model", nargs="+", default=None, help="models (default: every enabled model)")
    p.add_argument("--profile", nargs="+", default=None, choices=PROFILES, help="profiles (default: all)")
    p.add_argument("--experiments", nargs="+", default=["exp1", "exp2"], choices=["exp1", "exp2"])
    p.add_argument("--tokens-from", type=Path, default=None,
                   help="a run folder whose records give measured tokens per trial (default: estimate)")
    p.add_argument("--run", type=Path, default=None, help="a finished run folder: print its actual hours")
    p.add_argument("--prefill-weight", type=float, default=PREFILL_WEIGHT,
                   help=f"cost of a prompt token in output tokens (default {PREFILL_WEIGHT})")
    p.add_argument("--startup-s", type=float, default=None,
                   help=f"server start per model and profile, seconds (default {STARTUP_S:g}; local "
                        f"{LOCAL_STARTUP_S:g})")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=plan)


def base_loads(cfg: Config) -> list[StudyLoad]:
    """Per study: the full trial count, prompt tokens from the sample (chars/4), max_tokens as output bound."""
    loads = []
    for name in cfg.experiments_file.studies:
        study = get_study(name)
        trials = study.load(cfg.study_file(name, sample=False))
        sample = study.load(cfg.study_file(name, sample=True))
        exp = cfg.experiment(name, "exp1")
        chars = [sum(len(m["content"]) for m in study.exp1_messages(t)) for t in sample]
        questions = len(study.exp2_questions(sample[0])) if sample else 1
        loads.append(StudyLoad(name, len(trials), exp.sampling.replications, sum(chars) / len(chars) / CHARS_PER_TOKEN,
                               float(exp.sampling.max_tokens), float(questions), float(questions),
                               "estimate: prompts chars/4, max_tokens"))
    return loads


def model_loads(base: list[StudyLoad], model: str, measured: dict[str, dict[str, Measured]], run: Path | None
                ) -> list[StudyLoad]:
    out = []
    for ld in base:
        own = measured.get(model, {}).get(ld.study)
        if own is not None:
            out.append(load_with(ld, own, f"measured: {run}"))
        else:
            names = ",".join(m for m in measured if ld.study in measured[m])
            out.append(load_with(ld, pooled(measured, ld.study), f"proxy: measured on {names}"))
    return out


def _startup(given: float | None, gpu_count: int) -> float:
    if given is not None:
        return given
    return STARTUP_S if gpu_count else LOCAL_STARTUP_S


def _fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def print_estimates(rows: list[HoursEstimate], loads: list[StudyLoad], args: argparse.Namespace) -> None:
    print(f"planned hours, full study ({', '.join(f'{ld.study} {ld.trials} trials' for ld in loads)}); "
          f"experiments {'+'.join(args.experiments)}; prefill weight {args.prefill_weight:g}; "
          f"server start {_startup(args.startup_s, 1):g} s per model ({_startup(args.startup_s, 0):g} s local)")
    for ld in loads:
        print(f"  {ld.study}: per trial {ld.prompt_tokens:.0f} prompt + {ld.completion_tokens:.0f} output tokens "
              f"x {ld.replications}; Exp 2 {ld.exp2_reads:.1f} reads, {ld.exp2_questions:.0f} questions")
    head = f"{'model':16} {'profile':8} {'GPUs':>4} {'tok/s':>7} {'Mtokens':>8} {'hours':>7} {'GPU-h':>7}  source"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r.model:16} {r.profile:8} {r.gpu_count:>4} {_fmt(r.throughput_tokens_per_s, 0):>7} "
              f"{r.tokens / 1e6:>8.2f} {_fmt(r.hours):>7} {_fmt(r.gpu_hours):>7}  {r.source}")
    total = sum(r.gpu_hours for r in rows if r.gpu_hours is not None and r.gpu_count)
    print(f"total GPU-hours (GPU profiles listed): {total:.2f}")


def plan(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    if args.run is not None:
        if not (args.run / "run.json").exists() and not any(args.run.glob("*/*/exp*.jsonl")):
            raise UserInputError(f"{args.run}: not a run folder (no run.json, no <model>/<study>/exp*.jsonl)")
        actual = actual_rows(args.run)
        if args.json:
            print(json.dumps([{**asdict(r), "tokens_per_s": r.tokens_per_s} for r in actual], indent=2))
            return 0
        print(f"actual hours of {args.run} (stage wall time x GPUs of the run's profile)")
        head = f"{'model':16} {'profile':8} {'GPUs':>4} {'trials':>7} {'stage s':>9} {'out tok/s':>9} {'GPU-h':>8}"
        print(head)
        print("-" * len(head))
        for r in actual:
            print(f"{r.model:16} {r.profile:8} {r.gpu_count:>4} {r.trials:>7} {r.stage_s:>9.1f} "
                  f"{_fmt(r.tokens_per_s, 1):>9} {r.gpu_hours:>8.4f}")
        if not args.tokens_from:
            args.tokens_from = args.run
    measured = measure_run(args.tokens_from) if args.tokens_from else {}
    if args.tokens_from and not measured:
        raise UserInputError(f"{args.tokens_from}: no exp1.jsonl/exp2.jsonl records to measure tokens from")
    base = base_loads(cfg)
    rows: list[HoursEstimate] = []
    profiles: list[ProfileName] = args.profile or list(PROFILES)
    for m in (cfg.model(n) for n in args.model) if args.model else cfg.models.values():
        if not args.model and not m.enabled:
            continue
        loads = model_loads(base, m.name, measured, args.tokens_from)
        for pname in profiles:
            if pname not in m.profiles:
                continue
            prof = m.profiles[pname]
            rows.append(estimate_row(m.name, pname, prof.gpu_count, prof.throughput_tokens_per_s, loads,
                                 experiments=args.experiments, prefill_weight=args.prefill_weight,
                                 startup_s=_startup(args.startup_s, prof.gpu_count)))
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return 0
    if args.run is not None:
        print()
    print_estimates(rows, model_loads(base, "", measured, args.tokens_from) if measured else base, args)
    return 0
