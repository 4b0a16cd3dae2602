"""Kubernetes objects (plain dicts) for a profile: per model a vLLM Deployment + Service, per model x study x
experiment a runner Job, the two PVCs, and the runner's RBAC (ServiceAccount, Role, RoleBinding). The server
arguments come from grace.serving.args.vllm_args with cpu=False, so the cluster runs exactly the arguments the
local backend derives from the same config."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from grace.config import Config, ExperimentConfig, ModelConfig, Profile
from grace.errors import ConfigError
from grace.manifests.settings import ClusterSettings
from grace.serving.args import server_env, vllm_args

Obj = dict[str, Any]

PART_OF = "app.kubernetes.io/part-of"
COMPONENT = "app.kubernetes.io/component"
L_MODEL, L_STUDY, L_EXP, L_RUN, L_OWNER, L_FAMILY = (
    "grace/model", "grace/study", "grace/experiment", "grace/run-id", "grace/owner", "grace/family")
GPU_EXCEPTION_ANNOTATION = "grace/gpu-exception"
GPU = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_PRODUCTS = {  # per GPU profile, the GPU_PRODUCT_LABEL values its pods may be scheduled on
    "rtx3090": ["NVIDIA-GeForce-RTX-3090"],
    "a100": ["NVIDIA-A100-SXM4-80GB", "NVIDIA-A100-80GB-PCIe"],
}
_INVALID = re.compile(r"[^a-z0-9-]+")
_LABEL_INVALID = re.compile(r"[^A-Za-z0-9._-]+")


def dns_name(*parts: str, max_len: int = 63) -> str:
    """A DNS-1035 label from the parts ('.' and '_' become '-'); too long -> truncated plus a short hash."""
    raw = "-".join(p for p in parts if p)
    name = _INVALID.sub("-", raw.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if not name or not name[0].isalpha():
        name = "g-" + name
    if len(name) > max_len:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:6]
        name = name[: max_len - 7].rstrip("-") + "-" + digest
    return name


def label_value(value: str) -> str:
    v = _LABEL_INVALID.sub("-", value)[:63].strip("-._")
    return v or "none"


def labels(settings: ClusterSettings, run_id: str, component: str, model: str = "all", study: str = "all",
           experiment: str = "all") -> dict[str, str]:
    return {
        PART_OF: "grace",
        COMPONENT: component,
        L_OWNER: label_value(settings.name_prefix),
        L_RUN: label_value(run_id),
        L_MODEL: label_value(model),
        L_STUDY: label_value(study),
        L_EXP: label_value(experiment),
    }


def cpu_quantity(cores: float) -> str:
    return str(int(cores)) if float(cores).is_integer() else f"{round(cores * 1000)}m"


def memory_quantity(gib: float) -> str:
    return f"{int(gib)}Gi" if float(gib).is_integer() else f"{round(gib * 1024)}Mi"


def server_name(settings: ClusterSettings, model: ModelConfig, run_id: str) -> str:
    return dns_name(settings.name_prefix, run_id, model.name, "vllm")


def service_url(settings: ClusterSettings, model: ModelConfig, run_id: str) -> str:
    """The in-cluster base URL of a model's Service."""
    return f"http://{server_name(settings, model, run_id)}.{settings.namespace}.svc.cluster.local:{settings.vllm_port}"


def _gpu_affinity(profile_name: str) -> Obj:
    products = GPU_PRODUCTS.get(profile_name)
    if not products:
        raise ConfigError(f"profile {profile_name!r} has no GPU product (known: {', '.join(GPU_PRODUCTS)})")
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": GPU_PRODUCT_LABEL, "operator": "In", "values": list(products)}]}]}}}


def _gpu_profile(model: ModelConfig, profile_name: str) -> Profile:
    if profile_name == "local":
        raise ConfigError("the local profile runs on this machine's CPU; choose a GPU profile (rtx3090, a100)")
    return model.profile(profile_name)


def vllm_deployment(model: ModelConfig, profile_name: str, settings: ClusterSettings, run_id: str,
                    seed: int | None = 2026) -> Obj:
    prof = _gpu_profile(model, profile_name)
    name = server_name(settings, model, run_id)
    lab = labels(settings, run_id, "vllm", model=model.name) | {L_FAMILY: label_value(model.family)}
    res = prof.resources
    args = vllm_args(model, prof, weights=model.hf_id, port=settings.vllm_port, host="0.0.0.0", seed=seed,
                     cpu=False, download_dir=f"{settings.model_cache_mount}/hub", hardware=profile_name)
    probe = {"httpGet": {"path": "/v1/models", "port": "http"}, "periodSeconds": settings.startup.probe_period_s}
    annotations = {"grace/profile": profile_name, "grace/hf-id": model.hf_id, "grace/revision": model.revision}
    if prof.exception:
        annotations[GPU_EXCEPTION_ANNOTATION] = "true"
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": settings.namespace, "labels": lab, "annotations": annotations},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": lab | {"app.kubernetes.io/name": name}, "annotations": annotations},
                "spec": {
                    "affinity": _gpu_affinity(profile_name),
                    "containers": [{
                        "name": "vllm",
                        "image": settings.images.vllm,
                        "command": ["python3", "-m", "vllm.entrypoints.openai.api_server"],
                        "args": args,
                        "ports": [{"name": "http", "containerPort": settings.vllm_port}],
                        "env": [
                            {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
                                "name": settings.hf_token_secret.name, "key": settings.hf_token_secret.key}}},
                            {"name": "HF_HOME", "value": f"{settings.model_cache_mount}/hf"},
                            {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
                            *({"name": k, "value": v} for k, v in sorted(server_env(model, prof).items())),
                        ],
                        "resources": {
                            "requests": {"cpu": cpu_quantity(res.cpu_request),
                                         "memory": memory_quantity(res.memory_gib_request),
                                         GPU: str(prof.gpu_count)},
                            "limits": {"cpu": cpu_quantity(res.cpu_limit),
                                       "memory": memory_quantity(res.memory_gib_limit),
                                       GPU: str(prof.gpu_count)},
                        },
                        "startupProbe": probe | {"failureThreshold": settings.startup.probe_failure_threshold},
                        "readinessProbe": probe | {"failureThreshold": 3},
                        "livenessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 30,
                                          "failureThreshold": 5},
                        "volumeMounts": [
                            {"name": "model-cache", "mountPath": settings.model_cache_mount},
                            {"name": "dshm", "mountPath": "/dev/shm"},
                        ],
                    }],
                    "volumes": [
                        {"name": "model-cache",
                         "persistentVolumeClaim": {"claimName": pvc_name(settings, "model_cache")}},
                        {"name": "dshm", "emptyDir": {"medium": "Memory",
                                                      "sizeLimit": memory_quantity(settings.shm_size_gib)}},
                    ],
                },
            },
        },
    }


def vllm_service(model: ModelConfig, settings: ClusterSettings, run_id: str) -> Obj:
    name = server_name(settings, model, run_id)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": settings.namespace,
                     "labels": labels(settings, run_id, "vllm", model=model.name)},
        "spec": {"type": "ClusterIP", "selector": {"app.kubernetes.io/name": name},
                 "ports": [{"name": "http", "port": settings.vllm_port, "targetPort": "http"}]},
    }


def job_command(model: ModelConfig, profile_name: str, exp: ExperimentConfig, settings: ClusterSettings,
                run_id: str) -> list[str]:
    verb = "query" if exp.experiment == "exp1" else "score"
    cmd = ["grace", verb, "--model", model.name, "--profile", profile_name, "--study", exp.study,
           "--out", f"{settings.results_mount}/{run_id}"]
    if exp.experiment == "exp2" and exp.scoring_path == "inprocess":
        cmd += ["--path", "inprocess"]
    else:
        cmd += ["--endpoint", service_url(settings, model, run_id)]
    return cmd


def study_job(model: ModelConfig, profile_name: str, exp: ExperimentConfig, settings: ClusterSettings,
              run_id: str) -> Obj:
    """A runner Job (Guaranteed QoS). Exp 2's in-process path gets the model's GPUs and node affinity."""
    prof = _gpu_profile(model, profile_name)
    inprocess = exp.experiment == "exp2" and exp.scoring_path == "inprocess"
    name = dns_name(settings.name_prefix, run_id, model.name, exp.study, exp.experiment)
    lab = labels(settings, run_id, "runner", model=model.name, study=exp.study, experiment=exp.experiment)
    if inprocess:
        r = prof.resources
        amount = {"cpu": cpu_quantity(r.cpu_request), "memory": memory_quantity(r.memory_gib_request),
                  GPU: str(prof.gpu_count)}
    else:
        jr = settings.jobs.resources
        amount = {"cpu": cpu_quantity(jr.cpu), "memory": memory_quantity(jr.memory_gib)}
    mounts = [{"name": "results", "mountPath": settings.results_mount}]
    volumes: list[Obj] = [{"name": "results",
                           "persistentVolumeClaim": {"claimName": pvc_name(settings, "results")}}]
    if inprocess:
        mounts.append({"name": "model-cache", "mountPath": settings.model_cache_mount})
        volumes.append({"name": "model-cache",
                        "persistentVolumeClaim": {"claimName": pvc_name(settings, "model_cache")}})
    pod_spec: Obj = {
        "restartPolicy": "Never",
        "serviceAccountName": settings.service_account,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000},
        "containers": [{
            "name": "runner",
            "image": settings.images.runner,
            "command": job_command(model, profile_name, exp, settings, run_id),
            "env": [
                {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {
                    "name": settings.hf_token_secret.name, "key": settings.hf_token_secret.key, "optional": True}}},
                {"name": "HF_HOME", "value": f"{settings.model_cache_mount}/hf"},
                {"name": "GRACE_RUN_ID", "value": run_id},
            ],
            "resources": {"requests": dict(amount), "limits": dict(amount)},
            "securityContext": {"allowPrivilegeEscalation": False},
            "volumeMounts": mounts,
        }],
        "volumes": volumes,
    }
    if inprocess:
        pod_spec["affinity"] = _gpu_affinity(profile_name)
    meta: Obj = {"name": name, "namespace": settings.namespace, "labels": lab}
    if inprocess and prof.exception:
        meta["annotations"] = {GPU_EXCEPTION_ANNOTATION: "true"}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": settings.jobs.backoff_limit,
            "ttlSecondsAfterFinished": settings.jobs.ttl_seconds_after_finished,
            "activeDeadlineSeconds": settings.jobs.active_deadline_seconds,
            "template": {"metadata": {"labels": lab}, "spec": pod_spec},
        },
    }


def pvc_name(settings: ClusterSettings, which: str) -> str:
    return dns_name(settings.name_prefix, getattr(settings.pvcs, which).name)


def pvcs(settings: ClusterSettings, run_id: str) -> list[Obj]:
    out = []
    for which in ("results", "model_cache"):
        spec = getattr(settings.pvcs, which)
        out.append({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": pvc_name(settings, which), "namespace": settings.namespace,
                         "labels": labels(settings, run_id, "storage")},
            "spec": {"accessModes": [spec.access_mode], "storageClassName": settings.storage_class,
                     "resources": {"requests": {"storage": spec.size}}},
        })
    return out


# What the flow runner does in its namespace, and nothing more (grace/serving/kubernetes.py): create, watch and
# delete the vLLM Deployment and Service, read pods and events to explain a server that does not come up.
RUNNER_RULES: list[Obj] = [
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "create", "delete"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "create", "delete"]},
    {"apiGroups": [""], "resources": ["pods", "pods/log", "events"], "verbs": ["get", "list", "watch"]},
]


def rbac(settings: ClusterSettings, run_id: str) -> list[Obj]:
    """The runner's ServiceAccount (unless it is the namespace's `default`), a Role with RUNNER_RULES and the
    RoleBinding between them."""
    meta = {"namespace": settings.namespace, "labels": labels(settings, run_id, "rbac")}
    role = dns_name(settings.name_prefix, "runner")
    objs: list[Obj] = []
    if settings.service_account != "default":
        objs.append({"apiVersion": "v1", "kind": "ServiceAccount",
                     "metadata": {"name": settings.service_account, **meta}})
    objs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                 "metadata": {"name": role, **meta}, "rules": RUNNER_RULES})
    objs.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                 "metadata": {"name": role, **meta},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
                 "subjects": [{"kind": "ServiceAccount", "name": settings.service_account,
                               "namespace": settings.namespace}]})
    return objs


def build_all(cfg: Config, profile_name: str, settings: ClusterSettings, run_id: str,
              models: list[str] | None = None) -> list[Obj]:
    """Every object of a run on one profile: RBAC, PVCs, then per model Deployment, Service and Jobs."""
    chosen = cfg.models_for(profile_name, models)
    if not chosen:
        raise ConfigError(f"no enabled model has a {profile_name!r} profile")
    objs = rbac(settings, run_id) + pvcs(settings, run_id)
    for m in chosen:
        objs.append(vllm_deployment(m, profile_name, settings, run_id))
        objs.append(vllm_service(m, settings, run_id))
        for exp in cfg.experiments:
            objs.append(study_job(m, profile_name, exp, settings, run_id))
    return objs
