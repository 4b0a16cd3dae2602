"""`kubectl apply -f` ready output: one YAML file per object plus a kustomization.yaml, and reading it back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from grace.checkpoint import atomic_path
from grace.errors import UserInputError

KIND_ORDER = {"ServiceAccount": 0, "Role": 1, "RoleBinding": 2, "PersistentVolumeClaim": 3, "Service": 4,
              "Deployment": 5, "Job": 6, "CronJob": 7}


class _NoAliases(yaml.SafeDumper):
    """A safe dumper that writes a value shared by two places out twice, rather than as a YAML anchor and
    alias (`&id001` / `*id001`), which a person reading a manifest (or kubectl's diff) does not expect."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(obj: dict[str, Any]) -> str:
    return yaml.dump(obj, Dumper=_NoAliases, sort_keys=False)


def file_name(obj: dict[str, Any]) -> str:
    return f"{obj['kind'].lower()}-{obj['metadata']['name']}.yaml"


def write_manifests(objs: list[dict[str, Any]], out: Path, namespace: str) -> list[Path]:
    """Write the objects (RBAC, PVCs, Services, Deployments, Jobs, in that order) and a kustomization listing them.

    Stale *.yaml files of an earlier generation in `out` are removed so the folder is exactly this set.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ordered = sorted(objs, key=lambda o: KIND_ORDER.get(o["kind"], 9))
    names = [file_name(o) for o in ordered]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise UserInputError(f"two objects would be written to the same file: {dup}")
    for old in out.glob("*.yaml"):
        if old.name not in names and old.name != "kustomization.yaml":
            old.unlink()
    paths = []
    for obj, name in zip(ordered, names, strict=True):
        with atomic_path(out / name) as tmp:
            tmp.write_text(dump(obj), encoding="utf-8")
        paths.append(out / name)
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                     "namespace": namespace, "resources": names}
    with atomic_path(out / "kustomization.yaml") as tmp:
        tmp.write_text(dump(kustomization), encoding="utf-8")
    return paths


def read_manifests(folder: Path) -> list[dict[str, Any]]:
    """Every object in the folder's YAML files (except kustomization.yaml); bad YAML is a one-line error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserInputError(f"{folder}: not a folder")
    objs: list[dict[str, Any]] = []
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        if path.name in ("kustomization.yaml", "kustomization.yml"):
            continue
        try:
            docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except yaml.YAMLError as e:
            raise UserInputError(f"{path}: not valid YAML: {getattr(e, 'problem', e)}") from None
        for doc in docs:
            if doc is None:
                continue
            if not isinstance(doc, dict) or "kind" not in doc:
                raise UserInputError(f"{path}: not a Kubernetes object (no 'kind')")
            objs.append(doc)
    if not objs:
        raise UserInputError(f"{folder}: no Kubernetes objects (*.yaml) found")
    return objs
