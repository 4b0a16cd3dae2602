"""The Kubernetes serving backend against the fake API server: create -> ready -> teardown, failure paths.

The official kubernetes client talks HTTP to tests/fake_kube (which validates every body against the real
OpenAPI schema); once the Deployment is Available, /v1/models is answered by the real local vLLM toy server.
Mid-stage faults (a pod restart, the Deployment deleted) put a fault proxy between the stage and that server,
dark while the fake API says no pod is ready.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from kubernetes import client

from grace.config import Config, ExperimentConfig, ModelConfig, Profile, Retry
from grace.errors import ServerError
from grace.manifests.build import RUNNER_RULES
from grace.manifests.settings import ClusterSettings, load_cluster_settings
from grace.query import run_exp1_sync
from grace.server_waits import read_waits
from grace.serving.base import Endpoint
from grace.serving.gate import ServerLost
from grace.serving.kubernetes import KubernetesServer, api_client_from_env
from grace.studies.registry import get_study
from tests.fake_kube import FakeKube, Scenario
from tests.support.fault_proxy import FaultProxy, Faults
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

    # this replaces pytest-timeout's SIGALRM timer (pyproject.toml) for the test: start_timeout_s bounds it instead
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
    assert first.renewer is not None
    first.renewer.stop()  # ... crashed: nothing renews its lease (a renewer left running outlives the fake cluster)
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


# -- while a stage runs (grace.serving.gate): a pod restart is waited through, a deleted Deployment stops it ------

def exp1_settings(cfg: Config, concurrency: int = 4) -> ExperimentConfig:
    exp = cfg.experiment("study2", "exp1")
    retry = Retry(attempts=2, backoff_initial_s=0.1, backoff_max_s=0.5, request_timeout_s=60)
    return exp.model_copy(update={"sampling": exp.sampling.model_copy(update={"max_tokens": 8}),
                                  "retry": retry, "concurrency": concurrency})


def when_rows(ckpt: Path, n: int, action: Callable[[], None], timeout: float = 300) -> threading.Thread:
    """Run `action` in a thread once the checkpoint holds `n` lines."""
    def run() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ckpt.exists() and ckpt.read_text().count("\n") >= n:
                action()
                return
            time.sleep(0.05)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def gpu_toy_model(cfg: Config) -> ModelConfig:
    toy = cfg.model("toy")
    return ModelConfig.model_validate(toy.model_dump() | {"profiles": {"a100": Profile(dtype="float32")}})


@pytest.mark.server
@pytest.mark.faults
def test_pod_restart_mid_stage_is_waited_through(kube: FakeKube, cfg: Config, settings: ClusterSettings,
                                                 toy_server: Endpoint, tmp_path: Path) -> None:
    """The pod's container is OOM-killed and restarted (restart count up, not ready, then ready; the Service
    answers nothing meanwhile): the stage pauses, waits, resumes; no row fails, none is asked twice."""
    study = get_study("study2")
    trials = study.load(cfg.study_file("study2", sample=False), limit=40)
    ckpt = tmp_path / "exp1.jsonl"
    with FaultProxy(toy_server.base_url) as proxy, \
            server(kube, cfg, settings, model=gpu_toy_model(cfg), base_url=proxy.url, start_timeout_s=120) as ep:
        name = kube.objects("Deployment")[0]["metadata"]["name"]
        marks: dict[str, float] = {}

        def restart() -> None:
            kube.restart_pod(name, down_s=4)
            proxy.set(Faults(mode="down"))  # no ready endpoint behind the Service
            marks["down"] = time.monotonic()
            time.sleep(4)
            proxy.set(Faults())
            marks["up"] = time.monotonic()

        t = when_rows(ckpt, 5, restart)
        res = run_exp1_sync(ep, study, trials, exp1_settings(cfg), tmp_path)
        t.join(timeout=10)
    rows = [json.loads(x) for x in ckpt.read_text().splitlines()]
    assert proxy.injected["down"] > 0, "the restart must have happened during the stage"
    assert res.failed == 0 and all(r["status"] != "error" for r in rows)
    assert sorted(r["trial_id"] for r in rows) == sorted(t["trial_id"] for t in trials), "every row exactly once"
    assert [w["outcome"] for w in res.waits] == ["back"], res.waits
    wait = res.waits[0]
    assert "restart count 0 -> 1" in wait["reason"] and "OOMKilled (137)" in wait["reason"], wait["reason"]
    assert 3 <= wait["waited_s"] < 30, wait
    assert [w.as_dict() for w in read_waits(tmp_path, "exp1")] == res.waits
    print(f"FAULTS-TABLE | pod restart mid-Exp 1 (fake API; Service dark 4 s) | 1 | {len(trials)} | {len(rows)} | 0 "
          f"| 0   (waited {wait['waited_s']:.1f} s)")


@pytest.mark.server
@pytest.mark.faults
def test_deployment_deleted_mid_stage_stops_it_with_the_reason(kube: FakeKube, cfg: Config, settings: ClusterSettings,
                                                               toy_server: Endpoint, tmp_path: Path) -> None:
    study = get_study("study2")
    trials = study.load(cfg.study_file("study2", sample=False), limit=40)
    ckpt = tmp_path / "exp1.jsonl"
    marks: dict[str, float] = {}
    with FaultProxy(toy_server.base_url) as proxy, \
            server(kube, cfg, settings, model=gpu_toy_model(cfg), base_url=proxy.url, start_timeout_s=120) as ep:
        name = kube.objects("Deployment")[0]["metadata"]["name"]

        def delete() -> None:
            client.AppsV1Api(api_for(kube)).delete_namespaced_deployment(name, "grace-lab")
            proxy.set(Faults(mode="down"))
            marks["deleted"] = time.monotonic()

        t = when_rows(ckpt, 5, delete)
        with pytest.raises(ServerLost, match=rf"Deployment {name} \(toy\) was deleted after \d+ of 40 rows; "
                                             "a rerun resumes") as err:
            run_exp1_sync(ep, study, trials, exp1_settings(cfg), tmp_path)
        stopped = time.monotonic() - marks["deleted"]
        t.join(timeout=5)
    rows = [json.loads(x) for x in ckpt.read_text().splitlines()]
    assert rows and all(r["status"] != "error" for r in rows), "no row recorded as failed: the rest stays unasked"
    assert len(rows) < len(trials)
    assert stopped < 10, f"the stage took {stopped:.1f} s to stop"
    assert [w.outcome for w in read_waits(tmp_path, "exp1")] == ["lost"]
    assert grace_objects(kube) == []
    print(f"deleted Deployment: stage stopped {stopped:.1f} s later: {err.value}")
