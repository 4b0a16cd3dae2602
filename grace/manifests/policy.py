"""The cluster's policy, checked on every generated object: one clear message per violation.

Rules: CPU and memory limits within `policy_ratio` of requests; GPU requests equal limits; more GPUs than the
exception threshold only with the model profile's `exception: true` (then a warning); tensor-parallel size
equals the GPU count; Gemma-2 never in float16; names valid DNS-1123 (Services DNS-1035); the Grace labels on
everything; no secret values written inline (env values of secret-like names, Secret objects with data,
Hugging Face tokens anywhere).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from kubernetes.utils import parse_quantity

from grace.manifests.build import (
    CRONJOB_NAME_MAX,
    GPU,
    GPU_EXCEPTION_ANNOTATION,
    L_EXP,
    L_FAMILY,
    L_MODEL,
    L_RUN,
    L_STUDY,
    PART_OF,
)
from grace.manifests.settings import ClusterSettings

DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
SECRET_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|ACCESS_KEY|PRIVATE_KEY)", re.I)
HF_TOKEN_VALUE = re.compile(r"\bhf_[A-Za-z0-9]{20,}\b")
REQUIRED_LABELS = (PART_OF, L_MODEL, L_STUDY, L_EXP, L_RUN)


@dataclass(frozen=True)
class Violation:
    obj: str  # Kind/name
    rule: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        return f"{self.severity}: {self.obj}: [{self.rule}] {self.message}"


def obj_ref(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind', '?')}/{(obj.get('metadata') or {}).get('name', '?')}"


def pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return spec
    if kind in ("Deployment", "Job", "StatefulSet", "DaemonSet", "ReplicaSet"):
        return (spec.get("template") or {}).get("spec")
    if kind == "CronJob":
        return ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template", {}).get("spec")
    return None


def _q(v: Any) -> Decimal:
    return Decimal(parse_quantity(v))


def _arg(args: list[str], flag: str) -> str | None:
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def _check_names(obj: dict[str, Any], ref: str) -> list[Violation]:
    name = (obj.get("metadata") or {}).get("name", "")
    out = []
    if len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        out.append(Violation(ref, "dns-name", f"name {name!r} is not a valid DNS-1123 name "
                                              "(lowercase a-z, 0-9, '-', '.')"))
    elif obj.get("kind") in ("Service", "Deployment", "Job") and (len(name) > 63 or not DNS1035_LABEL.match(name)):
        out.append(Violation(ref, "dns-name", f"name {name!r} must be a DNS-1035 label (at most 63 characters, "
                                              "start with a letter, no '.')"))
    elif obj.get("kind") == "CronJob" and len(name) > CRONJOB_NAME_MAX:
        out.append(Violation(ref, "dns-name", f"CronJob name {name!r} is longer than {CRONJOB_NAME_MAX} characters "
                                              "(the controller appends 11 to name its Jobs)"))
    return out


def _check_labels(obj: dict[str, Any], ref: str, settings: ClusterSettings) -> list[Violation]:
    meta = obj.get("metadata") or {}
    lab = meta.get("labels") or {}
    out = []
    missing = [k for k in REQUIRED_LABELS if k not in lab]
    if missing:
        out.append(Violation(ref, "labels", f"missing labels {missing}"))
    elif lab[PART_OF] != "grace":
        out.append(Violation(ref, "labels", f"{PART_OF} must be 'grace', is {lab[PART_OF]!r}"))
    if not meta.get("name", "").startswith(settings.name_prefix + "-"):
        out.append(Violation(ref, "name-prefix", f"name must start with the owner prefix {settings.name_prefix!r}-"))
    return out


def _check_secrets(obj: dict[str, Any], ref: str) -> list[Violation]:
    out = []
    if obj.get("kind") == "Secret" and (obj.get("data") or obj.get("stringData")):
        out.append(Violation(ref, "no-inline-secrets", "a Secret with values must not be generated; create it "
                                                       "out of band (kubectl create secret)"))
    if HF_TOKEN_VALUE.search(repr(obj)):
        out.append(Violation(ref, "no-inline-secrets", "a Hugging Face token value appears in the object"))
    spec = pod_spec(obj) or {}
    for c in [*spec.get("containers", []), *spec.get("initContainers", [])]:
        for e in c.get("env", []) or []:
            if "value" in e and SECRET_NAME.search(e.get("name", "")):
                out.append(Violation(ref, "no-inline-secrets", f"container {c.get('name')!r}: env {e['name']} "
                                                               "has an inline value; use valueFrom.secretKeyRef"))
    return out


def _check_resources(obj: dict[str, Any], ref: str, settings: ClusterSettings) -> list[Violation]:
    spec = pod_spec(obj)
    if spec is None:
        return []
    out = []
    ratio = Decimal(str(settings.policy_ratio))
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    family = ((obj.get("metadata") or {}).get("labels") or {}).get(L_FAMILY, "")
    for c in spec.get("containers", []):
        cname = c.get("name")
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        for r in ("cpu", "memory"):
            if r not in req or r not in lim:
                out.append(Violation(ref, "requests-limits", f"container {cname!r}: {r} needs both a request "
                                                             "and a limit"))
                continue
            rq, lm = _q(req[r]), _q(lim[r])
            if lm < rq:
                out.append(Violation(ref, "requests-limits", f"container {cname!r}: {r} limit {lim[r]} is below "
                                                             f"its request {req[r]}"))
            elif rq > 0 and lm > rq * ratio:
                out.append(Violation(ref, "limit-ratio", f"container {cname!r}: {r} limit {lim[r]} exceeds request "
                                                         f"{req[r]} by {float((lm / rq - 1) * 100):.0f}% "
                                                         f"(policy: at most {float((ratio - 1) * 100):.0f}%)"))
        gpu_req, gpu_lim = req.get(GPU), lim.get(GPU)
        if gpu_req is None and gpu_lim is None:
            continue
        if gpu_req is None or gpu_lim is None or _q(gpu_req) != _q(gpu_lim):
            out.append(Violation(ref, "gpu-request-equals-limit", f"container {cname!r}: {GPU} request {gpu_req} "
                                                                  f"must equal its limit {gpu_lim}"))
        gpus = int(_q(gpu_lim if gpu_lim is not None else gpu_req))
        if gpus > settings.gpu_exception_threshold:
            if annotations.get(GPU_EXCEPTION_ANNOTATION) == "true":
                out.append(Violation(ref, "gpu-exception", f"{gpus} GPUs exceed the threshold of "
                                                           f"{settings.gpu_exception_threshold}: covered by the "
                                                           "profile's exception: true", "warning"))
            else:
                out.append(Violation(ref, "gpu-exception", f"{gpus} GPUs exceed the threshold of "
                                                           f"{settings.gpu_exception_threshold}; set exception: true "
                                                           "in the model profile once the cluster granted one"))
        args = [str(a) for a in c.get("args", []) or []]
        if "--model" in args:  # a vLLM server container
            tp = int(_arg(args, "--tensor-parallel-size") or 1)
            if tp != gpus:
                out.append(Violation(ref, "tensor-parallel", f"container {cname!r}: --tensor-parallel-size {tp} "
                                                             f"differs from the {gpus} GPUs requested"))
            if family == "gemma2" and _arg(args, "--dtype") == "float16":
                out.append(Violation(ref, "gemma2-dtype", "Gemma-2 must not run in float16 (use bfloat16)"))
    return out


def check_object(obj: dict[str, Any], settings: ClusterSettings) -> list[Violation]:
    ref = obj_ref(obj)
    return [*_check_names(obj, ref), *_check_labels(obj, ref, settings), *_check_secrets(obj, ref),
            *_check_resources(obj, ref, settings)]


def check_objects(objs: list[dict[str, Any]], settings: ClusterSettings) -> list[Violation]:
    return [v for o in objs for v in check_object(o, settings)]


def errors(violations: list[Violation]) -> list[Violation]:
    return [v for v in violations if v.severity == "error"]
