"""`grace plan`: planned GPU-hours of the full study per model and profile (and the download before them, which
holds no GPU); `--run DIR`: the actual hours of a run, split into download, start, busy and idle.

The verb keeps its name; the estimate lives in grace/gpu_hours.py (a run's plan is grace.pipeline's Plan), a run's
split in grace/gpu_time.py."""

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
from grace.gpu_time import DOWNLOAD_MB_S, GpuSplit, planned_download_h, split_model
from grace.studies.orders import OrderPlan
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
    p.add_argument("--download-mb-s", type=float, default=DOWNLOAD_MB_S,
                   help=f"Hub -> model cache throughput for the planned download, MB/s (default {DOWNLOAD_MB_S:g})")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=plan)


def base_loads(cfg: Config) -> list[StudyLoad]:
    """Per study: the full trial count, prompt tokens from the sample (chars/4), max_tokens as output bound, the
    prompt variants each experiment runs and the prompts Exp 2 scores per trial and variant (questions x the
    rotations of their option lists, as experiments.yaml sets them)."""
    loads = []
    for name in cfg.experiments_file.studies:
        study = get_study(name)
        trials = study.load(cfg.study_file(name, sample=False))
        sample = study.load(cfg.study_file(name, sample=True))
        exp, exp2 = cfg.experiment(name, "exp1"), cfg.experiment(name, "exp2")
        v1 = exp.chosen_variants(tuple(v.name for v in study.variants("exp1")))
        v2 = exp2.chosen_variants(tuple(v.name for v in study.variants("exp2")))
        chars = [sum(len(m["content"]) for m in study.exp1_messages(t)) for t in sample]
        orders = OrderPlan(study, sample[:1], seed=exp2.order_seed, ordering=exp2.option_order)
        prompts = len(orders.exp2_prompts(sample[0], v2[0], exp2.rotations_up_to)[0]) if sample else 1
        loads.append(StudyLoad(name, len(trials), exp.sampling.replications, sum(chars) / len(chars) / CHARS_PER_TOKEN,
                               float(exp.sampling.max_tokens), float(prompts), float(prompts),
                               "estimate: prompts chars/4, max_tokens", len(v1), len(v2)))
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


def print_estimates(rows: list[HoursEstimate], loads: list[StudyLoad], args: argparse.Namespace,
                    download: dict[str, float | None]) -> None:
    print(f"planned hours, full study ({', '.join(f'{ld.study} {ld.trials} trials' for ld in loads)}); "
          f"experiments {'+'.join(args.experiments)}; prefill weight {args.prefill_weight:g}; "
          f"server start {_startup(args.startup_s, 1):g} s per model ({_startup(args.startup_s, 0):g} s local), "
          f"from weights already in the model cache")
    for ld in loads:
        print(f"  {ld.study}: per trial {ld.prompt_tokens:.0f} prompt + {ld.completion_tokens:.0f} output tokens "
              f"x {ld.replications} replicate(s) x {ld.exp1_variants} prompt variant(s): {ld.exp1_requests:,} Exp 1 "
              f"requests; Exp 2 {ld.exp2_variants} variant(s) x {ld.exp2_questions:.0f} prompts (questions x "
              f"option rotations; {ld.exp2_reads:.1f} reads): {ld.exp2_prompts:,.0f} prompts scored")
    print(f"  download: the weights (config weights_gib) at {args.download_mb_s:g} MB/s by the prefetch Job, before "
          "any GPU is held: wall hours, no GPU-hours")
    head = (f"{'model':16} {'profile':8} {'GPUs':>4} {'tok/s':>7} {'Mtokens':>8} {'download h':>10} {'hours':>7} "
            f"{'GPU-h':>7}  source")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r.model:16} {r.profile:8} {r.gpu_count:>4} {_fmt(r.throughput_tokens_per_s, 0):>7} "
              f"{r.tokens / 1e6:>8.2f} {_fmt(download.get(r.model)):>10} {_fmt(r.hours):>7} {_fmt(r.gpu_hours):>7}  "
              f"{r.source}")
    total = sum(r.gpu_hours for r in rows if r.gpu_hours is not None and r.gpu_count)
    print(f"total GPU-hours (GPU profiles listed): {total:.2f}")


def print_split(splits: list[GpuSplit]) -> None:
    print("GPU-hours split (download holds no GPU; start: asked -> ready; busy: time the batch slots were in use, "
          "from /metrics; idle: the rest of the time up)")
    head = (f"{'model':16} {'profile':8} {'GPUs':>4} {'download h':>10} {'start GPU-h':>11} {'busy GPU-h':>10} "
            f"{'idle GPU-h':>10} {'total GPU-h':>11} {'busy':>6}  source")
    print(head)
    print("-" * len(head))
    for g in splits:
        share = "-" if g.busy_share is None else f"{g.busy_share:.1%}"
        print(f"{g.model:16} {g.profile:8} {g.gpu_count:>4} {g.download_s / 3600:>10.4f} "
              f"{g.gpu_hours(g.start_s):>11.4f} {g.gpu_hours(g.busy_s):>10.4f} {g.gpu_hours(g.idle_s):>10.4f} "
              f"{g.total_gpu_hours:>11.4f} {share:>6}  {g.source}")


def plan(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    if args.run is not None:
        if not (args.run / "run.json").exists() and not any(args.run.glob("*/*/exp*.jsonl")):
            raise UserInputError(f"{args.run}: not a run folder (no run.json, no <model>/<study>/exp*.jsonl)")
        actual = actual_rows(args.run)
        splits = [split_model(args.run / r.model, r.profile, r.gpu_count, r.stage_s) for r in actual]
        if args.json:
            print(json.dumps([{**asdict(r), "tokens_per_s": r.tokens_per_s, "split": g.as_dict()}
                              for r, g in zip(actual, splits, strict=True)], indent=2))
            return 0
        print(f"actual hours of {args.run} (stage wall time x GPUs of the run's profile)")
        head = f"{'model':16} {'profile':8} {'GPUs':>4} {'trials':>7} {'stage s':>9} {'out tok/s':>9} {'GPU-h':>8}"
        print(head)
        print("-" * len(head))
        for r in actual:
            print(f"{r.model:16} {r.profile:8} {r.gpu_count:>4} {r.trials:>7} {r.stage_s:>9.1f} "
                  f"{_fmt(r.tokens_per_s, 1):>9} {r.gpu_hours:>8.4f}")
        print()
        print_split(splits)
        if not args.tokens_from:
            args.tokens_from = args.run
    measured = measure_run(args.tokens_from) if args.tokens_from else {}
    if args.tokens_from and not measured:
        raise UserInputError(f"{args.tokens_from}: no exp1.jsonl/exp2.jsonl records to measure tokens from")
    base = base_loads(cfg)
    rows: list[HoursEstimate] = []
    download: dict[str, float | None] = {}
    profiles: list[ProfileName] = args.profile or list(PROFILES)
    for m in (cfg.model(n) for n in args.model) if args.model else cfg.models.values():
        if not args.model and not m.enabled:
            continue
        loads = model_loads(base, m.name, measured, args.tokens_from)
        download[m.name] = planned_download_h(m, args.download_mb_s)
        for pname in profiles:
            if pname not in m.profiles:
                continue
            prof = m.profiles[pname]
            rows.append(estimate_row(m.name, pname, prof.gpu_count, prof.throughput_tokens_per_s, loads,
                                 experiments=args.experiments, prefill_weight=args.prefill_weight,
                                 startup_s=_startup(args.startup_s, prof.gpu_count)))
    if args.json:
        print(json.dumps([{**asdict(r), "download_h": download.get(r.model)} for r in rows], indent=2))
        return 0
    if args.run is not None:
        print()
    print_estimates(rows, model_loads(base, "", measured, args.tokens_from) if measured else base, args, download)
    return 0
