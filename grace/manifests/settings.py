"""Cluster settings (`config/cluster.yaml`): namespace, name prefix, PVCs, secret names, images, policy."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from grace.config import Strict, parse_yaml_file
from grace.paths import config_dir

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T)?$")


class PVC(Strict):
    name: str
    size: str
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany", "ReadWriteOncePod"] = "ReadWriteMany"

    @field_validator("size")
    @classmethod
    def _quantity(cls, v: str) -> str:
        if not QUANTITY.match(v):
            raise ValueError(f"not a Kubernetes quantity: {v!r} (e.g. 50Gi)")
        return v


class PVCs(Strict):
    results: PVC
    model_cache: PVC


class SecretRef(Strict):
    name: str
    key: str


class Images(Strict):
    vllm: str
    runner: str


class JobResources(Strict):
    cpu: Annotated[float, Field(gt=0)] = 2
    memory_gib: Annotated[float, Field(gt=0)] = 4


class Jobs(Strict):
    backoff_limit: Annotated[int, Field(ge=0, le=20)] = 2
    ttl_seconds_after_finished: Annotated[int, Field(ge=0)] = 86400
    active_deadline_seconds: Annotated[int, Field(gt=0)] = 172800
    resources: JobResources = JobResources()


class Startup(Strict):
    probe_period_s: Annotated[int, Field(ge=1)] = 10
    probe_failure_threshold: Annotated[int, Field(ge=1)] = 180


class ClusterSettings(Strict):
    namespace: str
    name_prefix: str
    kubernetes_version: str = "1.30"
    storage_class: str
    service_account: str = "default"
    pvcs: PVCs
    hf_token_secret: SecretRef
    images: Images
    vllm_port: Annotated[int, Field(ge=1, le=65535)] = 8000
    shm_size_gib: Annotated[float, Field(gt=0)] = 8
    model_cache_mount: str = "/models"
    results_mount: str = "/results"
    gpu_exception_threshold: Annotated[int, Field(ge=1)] = 2
    policy_ratio: Annotated[float, Field(ge=1.0)] = 1.2
    jobs: Jobs = Jobs()
    startup: Startup = Startup()

    @field_validator("namespace", "name_prefix")
    @classmethod
    def _dns_label(cls, v: str) -> str:
        if not DNS_LABEL.match(v) or len(v) > 40:
            raise ValueError(f"{v!r} must be a lowercase DNS label (a-z, 0-9, '-'), at most 40 characters")
        return v

    @field_validator("kubernetes_version")
    @classmethod
    def _version(cls, v: str) -> str:
        if not re.match(r"^1\.\d+$", v):
            raise ValueError(f"{v!r} must look like 1.30")
        return v


def cluster_path(path: Path | str | None = None) -> Path:
    return Path(path) if path else config_dir() / "cluster.yaml"


def load_cluster_settings(path: Path | str | None = None) -> ClusterSettings:
    """Read and check cluster.yaml; a mistake is one ConfigError line naming the file and field."""
    return parse_yaml_file(ClusterSettings, cluster_path(path))
