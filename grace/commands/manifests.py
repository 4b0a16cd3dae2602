"""`grace manifests`: generate policy-checked, schema-validated Kubernetes manifests, or check a folder."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

from grace.commands.common import add_config_option, config_from
from grace.errors import ConfigError, UserInputError
from grace.manifests.build import build_all
from grace.manifests.policy import Violation, check_objects, errors
from grace.manifests.settings import ClusterSettings, load_cluster_settings
from grace.manifests.validate import validate_objects
from grace.manifests.write import read_manifests, write_manifests


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("manifests", help="write Kubernetes manifests for a profile, or --check a folder")
    add_config_option(p)
    p.add_argument("--cluster-config", type=Path, default=None, help="cluster settings (default: config/cluster.yaml)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--profile", help="GPU profile: rtx3090 or a100")
    g.add_argument("--check", type=Path, metavar="DIR", help="validate and policy-check the YAML files in DIR")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: k8s/<profile>)")
    p.add_argument("--run-id", default="manual", help="run id written into names and labels (default: manual)")
    p.add_argument("--model", action="append", default=None, help="only this model (repeatable)")
    p.set_defaults(func=manifests)


def _report(objs: list[dict[str, Any]], settings: ClusterSettings, where: str) -> list[Violation]:
    """Print every schema error and policy violation; raise ConfigError if any is an error."""
    schema = validate_objects(objs, settings.kubernetes_version)
    violations = check_objects(objs, settings)
    for m in schema:
        print(f"schema: {m}")
    for v in violations:
        print(v)
    bad = len(schema) + len(errors(violations))
    if bad:
        raise ConfigError(f"{where}: {len(schema)} schema error(s), {len(errors(violations))} policy violation(s)")
    return violations


def _summary(objs: list[dict[str, Any]]) -> str:
    kinds = Counter(o["kind"] for o in objs)
    return ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))


def manifests(args: argparse.Namespace) -> int:
    settings = load_cluster_settings(args.cluster_config)
    if args.check:
        objs = read_manifests(args.check)
        warnings = _report(objs, settings, str(args.check))
        print(f"ok: {len(objs)} objects in {args.check} ({_summary(objs)}) pass schema validation "
              f"(Kubernetes {settings.kubernetes_version}) and the policy checks ({len(warnings)} warning(s))")
        return 0
    if args.profile == "local":
        raise UserInputError("--profile local runs on this machine; manifests are for rtx3090 or a100")
    cfg = config_from(args)
    objs = build_all(cfg, args.profile, settings, args.run_id, args.model)
    warnings = _report(objs, settings, f"profile {args.profile}")
    out = args.out or Path("k8s") / args.profile
    write_manifests(objs, out, settings.namespace)
    print(f"wrote {len(objs)} objects to {out} ({_summary(objs)}) + kustomization.yaml; schema ok "
          f"(Kubernetes {settings.kubernetes_version}), policy ok ({len(warnings)} warning(s))")
    print(f"apply with: kubectl apply -k {out}")
    return 0
