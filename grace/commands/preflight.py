"""`grace preflight`: a few trials of every stage on one model's own server, and the checks that stop a broken
model in minutes (chat roles, the prompt Exp 2 scores, the reasoning budget, option mass, log-probabilities)."""

from __future__ import annotations

import argparse
from pathlib import Path

from grace.commands.common import add_config_option, config_from
from grace.pipeline import EXPERIMENTS, backend_factory, make_plan
from grace.preflight import PREFLIGHT_TRIALS, run_preflight
from grace.run import safe_name
from grace.studies.registry import get_studies


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("preflight", help="check one model end to end on a few trials before its full study")
    add_config_option(p)
    p.add_argument("--model", default="local", help="model name from config/models.yaml (default: local)")
    p.add_argument("--profile", default="local", help="hardware profile (local, rtx3090, a100)")
    p.add_argument("--studies", nargs="+", default=None, help="studies to try (default: every configured study)")
    p.add_argument("--experiments", nargs="+", choices=EXPERIMENTS, default=list(EXPERIMENTS))
    p.add_argument("--trials", type=int, default=PREFLIGHT_TRIALS, help="trials per study")
    p.add_argument("--endpoint", default=None, help="check a running OpenAI-compatible server at this URL")
    p.add_argument("--out", type=Path, default=None, help="folder for the trials and preflight.json")
    p.set_defaults(func=preflight)


def preflight(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    model = cfg.model(args.model)
    studies = args.studies or list(cfg.experiments_file.studies)
    plan = make_plan(cfg, models=[model.name], studies=get_studies(studies), experiments=args.experiments, sample=True,
                     profile=args.profile, limit=max(1, args.trials))
    out = args.out or Path("results") / safe_name(f"preflight-{model.name}")
    seed = cfg.experiment(studies[0], args.experiments[0]).sampling.seed
    factory = backend_factory(model, args.profile, run_id=f"preflight-{safe_name(model.name)}",
                              endpoint=args.endpoint, seed=seed, log_dir=out / "logs")
    print(f"preflight of {model.name} (profile {args.profile}): {args.trials} trial(s) of {', '.join(studies)}, "
          f"{', '.join(args.experiments)}, extraction -> {out}", flush=True)
    with factory() as endpoint:
        print(f"server ready at {endpoint.base_url} (vLLM {endpoint.server_version or '?'}, system message "
              f"{endpoint.chat_form})", flush=True)
        report = run_preflight(endpoint, model, cfg, {n: (s, t) for n, (s, t, _) in plan.studies.items()},
                               args.experiments, out, extraction=cfg.experiments_file.extraction,
                               n_trials=args.trials)
    for c in report.checks:
        mark = "ok  " if c.passed else ("FAIL" if c.fatal else "warn")
        print(f"  [{mark}] {c.name}: {c.detail}")
    print(report.line())
    print(f"report: {out / 'preflight.json'}")
    return 0 if report.passed else 1
