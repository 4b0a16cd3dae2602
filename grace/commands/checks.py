"""`grace check-config` and `grace check-data`: validate before anything starts."""

from __future__ import annotations

import argparse
from pathlib import Path

from grace.commands.common import add_config_option, config_from
from grace.studies import get_study


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-config", help="validate config/models.yaml and config/experiments.yaml")
    add_config_option(p)
    p.set_defaults(func=check_config)
    p = sub.add_parser("check-data", help="validate a study CSV")
    p.add_argument("--study", required=True)
    p.add_argument("file", type=Path)
    p.set_defaults(func=check_data)


def check_config(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    n_prof = sum(len(m.profiles) for m in cfg.models.values())
    print(f"ok: {len(cfg.models)} models ({n_prof} model x profile entries), "
          f"{len(cfg.experiments)} experiments, default model {cfg.models_file.default_model}")
    return 0


def check_data(args: argparse.Namespace) -> int:
    study = get_study(args.study)
    trials = study.load(args.file)
    print(f"ok: {args.file}: {len(trials)} {study.name} trials")
    return 0
