"""The Kubernetes serving backend against the fake API server: create -> ready -> teardown, failure paths.

The official kubernetes client talks HTTP to tests/fake_kube (which validates every body against the real
OpenAPI schema); once the Deployment is Available, /v1/models is answered by the real local vLLM toy server.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kubernetes import client

from grace.config import Config, ModelConfig, Profile
from grace.errors import ServerError
from grace.manifests.build import RUNNER_RULES
from grace.manifests.settings import ClusterSettings, load_cluster_settings
from grace.serving.base import Endpoint
from grace.serving.kubernetes import KubernetesServer, api_client_from_env
from tests.fake_kube import FakeKube, Scenario
from tests.support.rbac import denied

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def settings() -> ClusterSettings:
    return load_cluster_settings(ROOT / "config" / "cluster.yaml")


@pytest.fixture()
def kube() -> Iterator[FakeKube]:
    with FakeKube(ready_after_s=0.5) as k:
        yield k
        assert k.rejected == [], f"request bodies the schema rejected: {k.rejected}"
        # the generated Role (grace manifests) allows everything the backend did, on every path
        assert denied(k.requests, RUNNER_RULES) == []


def api_for(kube: FakeKube) -> client.ApiClient:
    conf = client.Configuration()
    conf.host = kube.url
    return client.ApiClient(conf)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def server(kube: FakeKube, cfg: Config, settings: ClusterSettings, model: str = "gemma2-2b", **kw) -> KubernetesServer:
    kw.setdefault("base_url", closed_port_url())
    kw.setdefault("start_timeout_s", 10)
    return KubernetesServer(cfg.model(model) if isinstance(model, str) else model, profile="a100",
                            settings=settings, run_id="t1", api_client=api_for(kube), poll_s=0.1,
                            unschedulable_grace_s=0, **kw)


def grace_objects(kube: FakeKube) -> list[str]:
    return [f"{o['kind']}/{o['metadata']['name']}" for o in kube.all_objects()
            if o["kind"] in ("Deployment", "Service", "Pod")]


@pytest.mark.server
def test_create_ready_teardown(kube: FakeKube, cfg: Config, settings: ClusterSettings, toy_server: Endpoint) -> None:
    toy = cfg.model("toy")
    gpu_toy = ModelConfig.model_validate(toy.model_dump() | {"profiles": {"a100": Profile(dtype="float32")}})
    t0 = time.monotonic()
    with server(kube, cfg, settings, model=gpu_toy, base_url=toy_server.base_url) as ep:
        assert ep.model == "toy" and ep.base_url == toy_server.base_url
        names = grace_objects(kube)
        assert "Deployment/jdoe-t1-toy-vllm" in names and "Service/jdoe-t1-toy-vllm" in names
        dep = kube.objects("Deployment")[0]
        assert dep["metadata"]["labels"]["grace/run-id"] == "t1"
    print(f"create -> ready -> teardown: {time.monotonic() - t0:.2f}s")
    assert grace_objects(kube) == []
    methods = [m for m, _ in kube.requests]
    assert methods.count("POST") == 2 and methods.count("DELETE") == 2


@pytest.mark.parametrize("scenario, expected", [
    (Scenario.IMAGE_PULL, r"ImagePullBackOff: Back-off pulling image .*Failed to pull image"),
    (Scenario.UNSCHEDULABLE, r"Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu"),
    (Scenario.OOM, r"OOMKilled \(exit 137, 3 restarts\).*BackOff: Back-off restarting"),
])
def test_pod_failures_surface_and_clean_up(kube: FakeKube, cfg: Config, settings: ClusterSettings,
                                           scenario: Scenario, expected: str) -> None:
    kube.scenario = scenario
    t0 = time.monotonic()
    with pytest.raises(ServerError, match=expected), server(kube, cfg, settings, start_timeout_s=120):
        pytest.fail("must not become ready")
    assert time.monotonic() - t0 < 60, "a fatal pod state must end the wait long before the timeout"
    assert grace_objects(kube) == []


def test_not_available_times_out_clearly(kube: FakeKube, cfg: Config, settings: ClusterSettings) -> None:
    kube.scenario = Scenario.NEVER_READY
    with pytest.raises(ServerError, match=r"not Available after 1s; pods: jdoe-t1-gemma2-2b-vllm-\w+ Running"), \
            server(kube, cfg, settings, start_timeout_s=1):
        pass
    assert grace_objects(kube) == []


def test_available_but_not_answering_times_out(kube: FakeKube, cfg: Config, settings: ClusterSettings) -> None:
    with pytest.raises(ServerError, match=r"not ready after \d+s: ConnectError"), \
            server(kube, cfg, settings, start_timeout_s=2):
        pass
    assert grace_objects(kube) == []


def test_ctrl_c_while_waiting_deletes_everything(kube: FakeKube, cfg: Config, settings: ClusterSettings) -> None:
    kube.scenario = Scenario.NEVER_READY

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(KeyboardInterrupt), server(kube, cfg, settings, start_timeout_s=30):
            pass
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert grace_objects(kube) == []


def test_leftover_objects_conflict(kube: FakeKube, cfg: Config, settings: ClusterSettings) -> None:
    kube.scenario = Scenario.NEVER_READY
    first = server(kube, cfg, settings)
    first._started = time.monotonic()
    first._create()  # a crashed earlier run with the same run id
    with pytest.raises(ServerError, match=r"already exists.*grace cleanup --run-id t1"), server(kube, cfg, settings):
        pass
    # the failed second start removed the leftovers too (same labels)
    assert grace_objects(kube) == []


def test_fake_rejects_schema_invalid_bodies(kube: FakeKube, cfg: Config, settings: ClusterSettings) -> None:
    """What a client without its own checks (kubectl, raw HTTP) would send: the fake answers 422 like the server."""
    body = server(kube, cfg, settings).deployment
    body["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    r = httpx.post(f"{kube.url}/apis/apps/v1/namespaces/grace-lab/deployments", json=body)
    assert r.status_code == 422 and r.json()["reason"] == "Invalid" and "imagePullPolicyy" in r.json()["message"]
    kube.rejected.clear()
    assert grace_objects(kube) == []


def test_kubeconfig_and_missing_config(kube: FakeKube, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig")))
    api = api_client_from_env()
    assert client.CoreV1Api(api).list_namespaced_pod("grace-lab").items == []
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(ServerError, match="no Kubernetes access"):
        api_client_from_env()
