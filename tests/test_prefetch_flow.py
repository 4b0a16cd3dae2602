"""The flow `grace` on a cluster profile against the fake Kubernetes API: weights before GPUs, one model after
another. Three models, in this order: gemma2-2b (its prefetch Job fails: the repo is gated and no token may read
it), toy (its Job completes; its Deployment is answered by the real local vLLM toy server), gemma2-9b (gated
too; its Job runs while toy is served). The Jobs run the real prefetch (huggingface_hub against the fake Hub)
and report the marker, or the reason, in their termination message, as on the cluster."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from grace.cli import main
from grace.config import load_config
from grace.manifests.build import RUNNER_RULES
from grace.serving import Endpoint
from grace.serving.prefetch import PrefetchError, fetch_hub, termination_message
from tests.fake_hub import FakeHub
from tests.fake_kube import FakeKube
from tests.fake_kube.server import JobRun
from tests.support.rbac import denied

pytestmark = [pytest.mark.server, pytest.mark.prefect]
ROOT = Path(__file__).resolve().parent.parent
RUN = "x27-prefetch-flow"


@pytest.fixture()
def cluster_config(test_config_dir: Path, tmp_path: Path) -> Path:
    """The test config with toy on the a100 profile (its hub id stands for the weights the Job fetches) and the
    cluster settings polling the prefetch Job quickly."""
    d = tmp_path / "config"
    d.mkdir()
    shutil.copy(test_config_dir / "experiments.yaml", d / "experiments.yaml")
    models = yaml.safe_load((test_config_dir / "models.yaml").read_text())
    toy = models["models"]["toy"]
    toy["revision"] = "main"
    toy["profiles"]["a100"] = {"dtype": "float32", "gpu_count": 1}
    (d / "models.yaml").write_text(yaml.safe_dump(models, sort_keys=False))
    cluster = yaml.safe_load((ROOT / "config" / "cluster.yaml").read_text())
    cluster["prefetch"]["poll_s"] = 0.2
    (d / "cluster.yaml").write_text(yaml.safe_dump(cluster))
    return d


@pytest.fixture()
def hub(tmp_path: Path) -> Iterator[FakeHub]:
    cfg = load_config(ROOT / "config")
    toy = {p.name: p.read_bytes() for p in (ROOT / str(cfg.model("toy").local_path)).iterdir()}
    with FakeHub() as h:
        h.push("grace/toy-random-llama", toy)
        for name in ("gemma2-2b", "gemma2-9b"):
            h.push(cfg.model(name).hf_id, {"config.json": b"{}", "model.safetensors": b"\0" * 64}, gated=True)
        yield h


def run_the_job(hub: FakeHub, config: Path, cache: Path) -> Any:
    """What the prefetch Job's container does (`grace prefetch ...`), run for real, its result as the pod's
    termination message: the marker, or the reason (the model's cache on the PVC is `cache` here)."""
    cfg = load_config(config)

    def outcome(job: dict[str, Any]) -> JobRun:
        cmd = job["spec"]["template"]["spec"]["containers"][0]["command"]
        model = cfg.model(cmd[cmd.index("--model") + 1])
        try:
            m = fetch_hub(model.name, model.hf_id, cmd[cmd.index("--revision") + 1], cache, endpoint=hub.url)
        except PrefetchError as e:
            return JobRun(succeed=False, message=str(e), after_s=0.2)
        return JobRun(message=termination_message(m), after_s=0.5)

    return outcome


def test_weights_before_gpus_and_the_next_model_fetched_while_one_is_served(
    prefect_server: str, cluster_config: Path, toy_server: Endpoint, hub: FakeHub, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from flows.grace_flow import grace

    for var in ("KUBERNETES_SERVICE_HOST", "GRACE_POD_NAME", "GRACE_POD_NAMESPACE", "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("GRACE_CONFIG_DIR", str(cluster_config))
    monkeypatch.setenv("GRACE_K8S_BASE_URL", toy_server.base_url)  # the Service's address: the real toy server
    with FakeKube(ready_after_s=0.3) as kube:
        monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig")))
        kube.job_outcome = run_the_job(hub, cluster_config, tmp_path / "pvc" / "hf" / "hub")
        state = grace(models=["gemma2-2b", "toy", "gemma2-9b"], studies=["study2"], experiments=["exp1"],
                      profile="a100", sample=True, limit=4, max_tokens=8, out=str(tmp_path), run_id=RUN,
                      extract_llm=False, preflight=False, return_state=True)
        assert kube.rejected == [], kube.rejected
        assert denied(kube.requests, RUNNER_RULES) == [], "the runner's Role allows every request the flow sent"
        log = [(e.verb, e.kind, e.name) for e in kube.log]
        creates = [e for e in kube.log if e.verb == "create"]
        dep = kube.bodies["Deployment/jdoe-x27-prefetch-flow-toy-vllm"]
        left = [o["metadata"]["name"] for o in kube.all_objects() if o["kind"] in ("Deployment", "Service", "Job")]
    print("\n".join(f"{v:9} {k:10} {n}" for v, k, n in log))

    # gemma2-2b: its Job failed; no Deployment was ever asked for, and the run went on
    assert state.is_failed(), state.name
    assert "gemma2-2b: prefetch-gemma2-2b failed" in state.message and "is gated" in state.message, state.message
    assert "gemma2-9b: prefetch failed: PrefetchError: gemma2-9b: prefetch Job" in state.message, state.message
    assert {e.name for e in creates if e.kind == "Deployment"} == {"jdoe-x27-prefetch-flow-toy-vllm"}
    # toy: its Job completed before its Deployment was created ...
    order = [(v, n) for v, _, n in log if "toy" in n and v in ("create", "complete")]
    assert order[:3] == [("create", "jdoe-x27-prefetch-flow-toy-prefetch"),
                         ("complete", "jdoe-x27-prefetch-flow-toy-prefetch"),
                         ("create", "jdoe-x27-prefetch-flow-toy-vllm")], order
    # ... and gemma2-9b's Job was created while toy's Deployment existed (fetched while toy was served)
    ahead = kube.first("create", "Job", "gemma2-9b-prefetch")
    assert "Deployment/jdoe-x27-prefetch-flow-toy-vllm" in ahead.existing
    assert left == [], f"nothing left in the namespace: {left}"

    # toy served exactly the commit its prefetch resolved; run.json and the records say which
    sha = hub.repos["grace/toy-random-llama"].branches["main"]
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--revision") + 1] == sha and args[args.index("--download-dir") + 1] == "/models/hf/hub"
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HF_HUB_OFFLINE"] == "1", "the GPU pod never downloads"
    assert "grace/lease-expires" in dep["metadata"]["annotations"], "outside the cluster: a lease, no owner"
    rd = tmp_path / RUN
    meta = json.loads((rd / "run.json").read_text())
    assert meta["weights"]["toy"]["commit"] == sha and meta["weights"]["toy"]["requested"] == "main"
    assert meta["weights"]["gemma2-2b"]["status"] == "failed" and meta["weights"]["gemma2-9b"]["status"] == "failed"
    rows = [json.loads(x) for x in (rd / "toy" / "study2" / "exp1.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and {r["model_revision"] for r in rows} == {sha}

    # the stage recorded the server's load from /metrics; the server's life is kept for `grace plan --run`
    (stage,) = json.loads((rd / "toy" / "done.json").read_text())["stages"]
    assert stage["busy_share"] is not None and stage["running_mean"] > 0 and stage["low_utilization"] is True
    assert "only 4 requests for 256 batch slots" in stage["utilization_cause"]
    (life,) = json.loads((rd / "toy" / "server.json").read_text())["lives"]
    assert life["ready"] and life["start_s"] > 0 and life["up_s"] > 0 and life["request_s"] > 0
    capsys.readouterr()
    assert main(["plan", "--run", str(rd), "--config-dir", str(cluster_config)]) == 0
    out = capsys.readouterr().out
    assert "GPU-hours split" in out and "server lifetime (/metrics)" in out
