"""Which Kubernetes API requests a Role's rules allow: the API server's RBAC decision for namespaced
resource requests (verb from method + path, resource with subresource), so tests can check that the Role
Grace generates covers every request the serving backend really sent."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit


def request_attributes(method: str, path: str) -> tuple[str, str, str]:
    """(apiGroup, resource[/subresource], verb) of a namespaced resource request."""
    url = urlsplit(path)
    parts = url.path.strip("/").split("/")
    if parts[0] == "api":
        group, rest = "", parts[2:]
    elif parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        raise ValueError(f"not a resource request: {path}")
    if len(rest) < 3 or rest[0] != "namespaces":
        raise ValueError(f"not a namespaced resource request: {path}")
    resource = rest[2] + (f"/{rest[4]}" if len(rest) > 4 else "")
    named = len(rest) > 3
    if method == "GET":
        watch = parse_qs(url.query).get("watch", ["false"])[0].lower() in ("true", "1")
        verb = "watch" if watch else ("get" if named else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if named else "deletecollection"}[method]
    return group, resource, verb


def denied(requests: list[tuple[str, str]], rules: list[dict[str, Any]]) -> list[str]:
    """The requests no rule allows, as 'METHOD path (verb group/resource)'."""
    out = []
    for method, path in requests:
        group, resource, verb = request_attributes(method, path)
        if not any(group in r["apiGroups"] and resource in r["resources"] and verb in r["verbs"] for r in rules):
            out.append(f"{method} {path} ({verb} {group or 'core'}/{resource})")
    return out
