"""Schema validation of Kubernetes objects against the real OpenAPI schema, offline and strict.

kubernetes-validate ships the JSON schemas of Kubernetes 1.25-1.37; strict mode rejects unknown fields, so a
typo in a field name fails instead of being silently dropped by the API server.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
from kubernetes_validate.utils import VersionNotSupportedError

from grace.errors import ConfigError
from grace.manifests.policy import obj_ref


def schema_errors(obj: dict[str, Any], version: str) -> list[str]:
    """Messages 'Kind/name: path.to.field: what is wrong' (empty when the object is valid)."""
    ref = obj_ref(obj)
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.absolute_path) or "<top>"
        return [f"{ref}: {path}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"{ref}: no schema for {obj.get('apiVersion')}/{obj.get('kind')} in Kubernetes {version}"]
    except (VersionNotSupportedError, IndexError):
        raise ConfigError(f"Kubernetes version {version} is not supported by kubernetes-validate "
                          f"(latest {kubernetes_validate.latest_version()})") from None
    return []


def validate_objects(objs: list[dict[str, Any]], version: str) -> list[str]:
    return [m for o in objs for m in schema_errors(o, version)]
