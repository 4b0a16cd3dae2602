"""Prefect blocks: `GraceCluster` (the cluster settings of config/cluster.yaml) and the HF token as a Secret.

Register the block type:   prefect block register -f blocks/cluster.py
Save both documents:       HF_TOKEN=... python -m blocks.cluster [config/cluster.yaml]
The token is read from the environment and stored only in Prefect's Secret block `hf-token` (encrypted at rest
by the server), never in a file of the repository.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from prefect.blocks.core import Block
from prefect.blocks.system import Secret
from pydantic import Field

from grace.manifests.settings import ClusterSettings, load_cluster_settings

CLUSTER_BLOCK = "grace-cluster"
HF_TOKEN_BLOCK = "hf-token"


class GraceCluster(Block):
    """Grace's cluster settings: namespace, name prefix, PVCs, secret names, images, policy thresholds."""

    _block_type_name = "Grace Cluster"
    _block_type_slug = "grace-cluster"
    _description = "Grace's Kubernetes settings (the content of config/cluster.yaml, checked by Grace)."

    settings: dict[str, Any] = Field(description="config/cluster.yaml as a mapping")

    def cluster_settings(self) -> ClusterSettings:
        """The settings, checked by the same pydantic model `grace manifests` uses."""
        return ClusterSettings.model_validate(self.settings)

    @classmethod
    def from_file(cls, path: str | None = None) -> GraceCluster:
        return cls(settings=load_cluster_settings(path).model_dump(mode="json"))


def save_blocks(path: str | None = None, overwrite: bool = True) -> list[str]:
    saved = [f"grace-cluster/{CLUSTER_BLOCK}"]
    GraceCluster.from_file(path).save(CLUSTER_BLOCK, overwrite=overwrite)
    token = os.environ.get("HF_TOKEN")
    if token:
        Secret(value=token).save(HF_TOKEN_BLOCK, overwrite=overwrite)
        saved.append(f"secret/{HF_TOKEN_BLOCK}")
    return saved


if __name__ == "__main__":
    for name in save_blocks(sys.argv[1] if len(sys.argv) > 1 else None):
        print(f"saved block {name}")
    if not os.environ.get("HF_TOKEN"):
        print("HF_TOKEN not set: the hf-token Secret block was not saved")
