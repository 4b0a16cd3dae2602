"""The Kubernetes work pool and the `full-study-k8s` deployment against a real local Prefect server; blocks;
the base job template rendered offline and checked against the Kubernetes schema and the cluster policy."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from grace.manifests.policy import check_object
from grace.manifests.settings import load_cluster_settings
from grace.manifests.validate import schema_errors
from tests.support.prefect_runs import forget

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "deployments" / "kubernetes" / "base-job-template.json"


def prefect(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([str(ROOT / ".venv/bin/prefect"), "--no-prompt", *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, f"prefect {' '.join(args)}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def rendered_job() -> dict:
    """The Job a Kubernetes worker would submit with the template's defaults (as the worker renders it)."""
    from prefect.utilities.templating import apply_values

    tmpl = json.loads(TEMPLATE.read_text())
    values = {k: v.get("default") for k, v in tmpl["variables"]["properties"].items()}
    values["command"] = ["prefect", "flow-run", "execute"]
    values["env"] = [{"name": k, "value": v} for k, v in values["env"].items()]
    job = apply_values(tmpl["job_configuration"]["job_manifest"], values, remove_notset=True)
    job["metadata"]["name"] = job["metadata"].pop("generateName") + "abcde"
    return job


def test_base_job_template_renders_valid_policy_clean_job() -> None:
    settings = load_cluster_settings(ROOT / "config" / "cluster.yaml")
    job = rendered_job()
    assert schema_errors(job, settings.kubernetes_version) == []
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["resources"]["requests"] == c["resources"]["limits"]  # Guaranteed QoS, within the 20% rule
    assert c["image"].startswith("ghcr.io/grace-lab/grace-runner")
    assert job["metadata"]["namespace"] == settings.namespace
    resource_rules = {v.rule for v in check_object(job, settings)} & {"limit-ratio", "requests-limits",
                                                                     "no-inline-secrets"}
    assert resource_rules == set()


@pytest.mark.prefect
def test_k8s_work_pool_and_deploy(prefect_env: dict[str, str], tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:  # what is read back below must be what this test registered
        forget(client, deployment="grace/full-study-k8s", work_pool="grace-k8s")
    env = prefect_env
    prefect(env, "work-pool", "create", "grace-k8s", "--type", "kubernetes", "--base-job-template",
            str(TEMPLATE), "--overwrite")
    out = prefect(env, "deploy", "--name", "full-study-k8s")
    assert "full-study-k8s" in out

    async def read() -> tuple[dict, object]:
        async with get_client() as c:
            pool = await c.read_work_pool("grace-k8s")
            dep = await c.read_deployment_by_name("grace/full-study-k8s")
            return pool, dep

    import asyncio

    pool, dep = asyncio.run(read())
    assert pool.type == "kubernetes"
    assert pool.base_job_template == json.loads(TEMPLATE.read_text())
    assert dep.work_pool_name == "grace-k8s"
    entry = next(d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
                 if d["name"] == "full-study-k8s")
    assert dep.parameters["profile"] == entry["parameters"]["profile"] == "a100"
    assert dep.job_variables["image"] == entry["work_pool"]["job_variables"]["image"]

    # the blocks: register the type, save the cluster settings and the token, read them back
    prefect(env, "block", "register", "-f", "blocks/cluster.py")
    code = ("from blocks.cluster import save_blocks, GraceCluster; from prefect.blocks.system import Secret; "
            "save_blocks('config/cluster.yaml'); "
            "print(GraceCluster.load('grace-cluster').cluster_settings().namespace, "
            "Secret.load('hf-token').get() == 'hf_test')")
    r = subprocess.run([str(ROOT / ".venv/bin/python"), "-c", code], env={**env, "HF_TOKEN": "hf_test"}, cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[-2:] == ["grace-lab", "True"]
