"""`grace check-config` and `grace check-data`: validate before anything starts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grace.commands.common import add_config_option, config_from
from grace.manifests.settings import load_cluster_settings
from grace.studies.registry import get_study
from grace.versions import image_drift


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
    warnings = cfg.warnings()
    cluster = cfg.directory / "cluster.yaml"
    if cluster.is_file():
        settings = load_cluster_settings(cluster)
        warnings += [f"{cluster}: {line}" for line in image_drift(settings.images.vllm, settings.images.runner)]
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr)
    n_prof = sum(len(m.profiles) for m in cfg.models.values())
    print(f"ok: {len(cfg.models)} models ({n_prof} model x profile entries), "
          f"{len(cfg.experiments)} experiments, default model {cfg.models_file.default_model}"
          + (f" ({len(warnings)} warning(s))" if warnings else ""))
    return 0


def check_data(args: argparse.Namespace) -> int:
    study = get_study(args.study)
    trials = study.load(args.file)
    print(f"ok: {args.file}: {len(trials)} {study.name} trials")
    return 0
