"""GPU time around the answers, against the fake Kubernetes API (real OpenAPI validation, the official client):
the prefetch Job and its result, owner references to the flow-run Job and the garbage collector's cascade, the
lease and `grace cleanup --expired` (and the CronJob that runs it), and the Role covering every request."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client

from grace.cli import main
from grace.config import Config
from grace.manifests.build import RUNNER_RULES, build_all, cleanup_cronjob
from grace.manifests.settings import ClusterSettings, Lease, load_cluster_settings
from grace.serving.kubernetes import KubernetesServer
from grace.serving.lease import LEASE_EXPIRES, expired, lease_annotations, lease_expiry
from grace.serving.prefetch import PrefetchError, PrefetchMarker, termination_message
from grace.serving.prefetch_job import KubernetesPrefetch
from tests.fake_kube import FakeKube
from tests.fake_kube.server import JobRun
from tests.support.rbac import denied

ROOT = Path(__file__).resolve().parent.parent
NS = "grace-lab"
PATHS = {"Deployment": "apis/apps/v1", "Job": "apis/batch/v1", "CronJob": "apis/batch/v1", "Service": "api/v1"}


@pytest.fixture(scope="module")
def settings() -> ClusterSettings:
    s = load_cluster_settings(ROOT / "config" / "cluster.yaml")
    # quick polls and renewals for the tests (model_copy does not validate: renew_s below the config's minimum)
    return s.model_copy(update={"prefetch": s.prefetch.model_copy(update={"poll_s": 0.1}),
                                "lease": Lease.model_construct(duration_s=120, renew_s=0.3,
                                                               cleanup_schedule="*/10 * * * *")})


@pytest.fixture()
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKube]:
    for var in ("KUBERNETES_SERVICE_HOST", "GRACE_POD_NAME", "GRACE_POD_NAMESPACE"):
        monkeypatch.delenv(var, raising=False)
    with FakeKube(ready_after_s=0.2) as k:
        monkeypatch.setenv("KUBECONFIG", str(k.kubeconfig(tmp_path / "kubeconfig")))
        yield k
        assert k.rejected == [], f"bodies the schema rejected: {k.rejected}"


def api_for(kube: FakeKube) -> client.ApiClient:
    conf = client.Configuration()
    conf.host = kube.url
    return client.ApiClient(conf)


def post(kube: FakeKube, obj: dict[str, Any]) -> dict[str, Any]:
    """What kubectl apply / prefect-kubernetes would send (not Grace's own requests)."""
    plural = obj["kind"].lower() + "s"
    r = httpx.post(f"{kube.url}/{PATHS[obj['kind']]}/namespaces/{obj['metadata']['namespace']}/{plural}", json=obj)
    assert r.status_code == 201, r.text
    return r.json()


def names(kube: FakeKube, *kinds: str) -> set[str]:
    return {f"{o['kind']}/{o['metadata']['name']}" for o in kube.all_objects() if o["kind"] in kinds}


def marker(commit: str = "c" * 40) -> PrefetchMarker:
    return PrefetchMarker(model="gemma2-2b", hf_id="google/gemma-2-2b-it", requested="main", commit=commit,
                          source="hub", files={"config.json": 900, "model.safetensors": 5_000_000_000},
                          file_count=2, total_bytes=5_000_000_900)


# -- the prefetch Job ------------------------------------------------------------------------------------------

def test_prefetch_job_result_comes_from_its_pod(kube: FakeKube, cfg: Config, settings: ClusterSettings) -> None:
    reported = marker()
    kube.job_outcome = lambda job: JobRun(message=termination_message(reported))
    n = len(kube.requests)
    got = KubernetesPrefetch(cfg.model("gemma2-2b"), settings=settings, run_id="r1", api_client=api_for(kube)).run()
    assert got == reported
    job = kube.bodies["Job/jdoe-r1-gemma2-2b-prefetch"]
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["command"][:6] == ["grace", "prefetch", "--model", "gemma2-2b", "--revision", "main"]
    assert "nvidia.com/gpu" not in c["resources"]["requests"], "a prefetch holds no GPU"
    assert [e["name"] for e in c["env"]][0] == "HF_TOKEN" and c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert [(e.verb, e.kind) for e in kube.log][:3] == [("create", "Job"), ("complete", "Job"), ("delete", "Job")]
    assert names(kube, "Job", "Pod") == set(), "the Job and its pod are gone once its result is read"
    assert denied(kube.requests[n:], RUNNER_RULES) == []


def test_failed_prefetch_job_says_why(kube: FakeKube, cfg: Config, settings: ClusterSettings) -> None:
    reason = "gemma2-2b: google/gemma-2-2b-it is gated: accept its licence on the Hub with the account whose token"
    kube.job_outcome = lambda job: JobRun(succeed=False, message=reason, after_s=0.1)
    with pytest.raises(PrefetchError, match=r"failed \(BackoffLimitExceeded: .*\): gemma2-2b: .* is gated"):
        KubernetesPrefetch(cfg.model("gemma2-2b"), settings=settings, run_id="r1", api_client=api_for(kube)).run()
    tries = [e for e in kube.log if e.verb == "gc-delete" and e.kind == "Pod"]
    assert len(tries) == settings.jobs.backoff_limit + 1, "the Job controller retried the download"
    assert names(kube, "Job", "Pod", "Deployment") == set()
    assert denied(kube.requests, RUNNER_RULES) == []


def test_leftover_prefetch_job_is_replaced(kube: FakeKube, cfg: Config, settings: ClusterSettings) -> None:
    kube.job_outcome = lambda job: JobRun(forever=True)
    old = KubernetesPrefetch(cfg.model("gemma2-2b"), settings=settings, run_id="r1", api_client=api_for(kube))
    old._create()  # a crashed earlier attempt left its Job running
    kube.job_outcome = lambda job: JobRun(message=termination_message(marker("d" * 40)))
    got = KubernetesPrefetch(cfg.model("gemma2-2b"), settings=settings, run_id="r1", api_client=api_for(kube)).run()
    assert got.commit == "d" * 40
    assert [e.verb for e in kube.log if e.kind == "Job"] == ["create", "delete", "create", "complete", "delete"]


# -- owner references: no server outlives the flow-run Job ------------------------------------------------------

def flow_run_job(kube: FakeKube, settings: ClusterSettings) -> tuple[dict[str, Any], str]:
    """A flow-run Job as prefect-kubernetes creates it, its pod running; returns the Job and the pod's name."""
    kube.job_outcome = lambda job: JobRun(forever=True)
    job = post(kube, {"apiVersion": "batch/v1", "kind": "Job", "metadata": {
        "name": "jdoe-grace-flow-x7k2p", "namespace": NS, "labels": {"app.kubernetes.io/part-of": "grace"}},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [{
            "name": "prefect-job", "image": settings.images.runner, "args": ["prefect", "flow-run", "execute"]}]}}}})
    pod = next(p for p in kube.objects("Pod", NS) if p["metadata"]["labels"].get("job-name") == job["metadata"]["name"])
    return job, pod["metadata"]["name"]


@pytest.fixture()
def server(kube: FakeKube, cfg: Config, settings: ClusterSettings) -> Iterator[KubernetesServer]:
    """gemma2-2b's server on the fake cluster (created by the test). Its lease renewer is stopped at teardown
    whatever the test did: one left running after a failed assertion patches a cluster that is gone, every tick,
    with a logged traceback each time, until the session ends (seen: minutes of a CPU core)."""
    s = KubernetesServer(cfg.model("gemma2-2b"), profile="a100", settings=settings, run_id="t1",
                         api_client=api_for(kube), poll_s=0.1, base_url="http://127.0.0.1:9")
    yield s
    if s.renewer is not None:
        s.renewer.stop()


def test_server_owned_by_the_flow_run_job_goes_with_it(kube: FakeKube, server: KubernetesServer,
                                                       settings: ClusterSettings,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    job, pod = flow_run_job(kube, settings)
    monkeypatch.setenv("GRACE_POD_NAME", pod)  # the downward API of the work pool's job template
    monkeypatch.setenv("GRACE_POD_NAMESPACE", NS)
    n = len(kube.requests)
    s = server
    s._create()
    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"], "uid": job["metadata"]["uid"]}
    dep = kube.objects("Deployment")[0]
    svc = kube.objects("Service")[0]
    assert dep["metadata"]["ownerReferences"] == [owner] and svc["metadata"]["ownerReferences"] == [owner]
    assert LEASE_EXPIRES in dep["metadata"]["annotations"] and LEASE_EXPIRES in svc["metadata"]["annotations"]
    assert LEASE_EXPIRES not in dep["spec"]["template"]["metadata"]["annotations"], "a renewal must not roll pods"
    assert ("GET", f"/api/v1/namespaces/{NS}/pods/{pod}") in kube.requests[n:], "the owner read from the pod itself"
    assert names(kube, "Pod") == {f"Pod/{pod}", f"Pod/{kube.objects('Pod')[1]['metadata']['name']}"}
    assert s.renewer is not None
    s.renewer.stop()  # the flow-run pod is killed: nothing of Grace runs any more, no teardown
    # the Job goes (its TTL, or a person): the garbage collector takes the server with it
    client.BatchV1Api(api_for(kube)).delete_namespaced_job(job["metadata"]["name"], NS,
                                                           propagation_policy="Background")
    assert names(kube, "Deployment", "Service", "Pod", "Job") == set()
    collected = {(e.kind, e.name) for e in kube.log if e.verb == "gc-delete"}
    assert {("Deployment", s.name), ("Service", s.name), ("Pod", pod)} <= collected
    assert denied(kube.requests[n:n + 3], RUNNER_RULES) == []


def test_the_work_pools_flow_run_job_tells_its_pod_who_it_is(kube: FakeKube, server: KubernetesServer,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The Job a Kubernetes worker makes from deployments/kubernetes/base-job-template.json (rendered by
    prefect-kubernetes itself) gives its pod GRACE_POD_NAME / GRACE_POD_NAMESPACE (downward API) beside Prefect's
    own variables; created as the worker does, the server's owner is that very Job."""
    import asyncio
    import uuid

    from prefect.client.schemas.objects import FlowRun
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    template = json.loads((ROOT / "deployments" / "kubernetes" / "base-job-template.json").read_text())
    conf = asyncio.run(KubernetesWorkerJobConfiguration.from_template_and_values(template, {}))
    conf.prepare_for_flow_run(FlowRun(flow_id=uuid.uuid4(), name="brave-fox"))
    manifest = conf.job_manifest
    env = {e["name"]: e for e in manifest["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["GRACE_POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["GRACE_POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert "PREFECT__FLOW_RUN_ID" in env and env["GRACE_HOME"]["value"] == "/app", "the worker's env is kept too"
    kube.job_outcome = lambda job: JobRun(forever=True)
    job = post(kube, manifest)  # generateName: the API server names it
    pod = next(p for p in kube.objects("Pod", NS) if p["metadata"]["labels"]["job-name"] == job["metadata"]["name"])
    monkeypatch.setenv("GRACE_POD_NAME", pod["metadata"]["name"])  # what the downward API gives the pod
    monkeypatch.setenv("GRACE_POD_NAMESPACE", NS)
    s = server
    s._create()
    assert s.owner == {"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"],
                       "uid": job["metadata"]["uid"]}
    s.stop()


def test_outside_a_pod_no_owner_but_a_lease_renewed_until_teardown(kube: FakeKube, server: KubernetesServer,
                                                                   settings: ClusterSettings) -> None:
    s = server
    t0 = datetime.now(UTC)
    s._create()
    dep = kube.objects("Deployment")[0]
    assert "ownerReferences" not in dep["metadata"]
    first = lease_expiry(dep["metadata"]["annotations"])
    assert first is not None and first >= t0 + timedelta(seconds=settings.lease.duration_s - 2)
    assert s.renewer is not None
    deadline = time.monotonic() + 30  # every 0.3 s; a loaded machine answers the schema-checked PATCHes slowly
    while s.renewer.renewals < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert s.renewer.renewals >= 2 and s.renewer.failures == 0, (s.renewer.renewals, s.renewer.failures)
    patched = [p for m, p in kube.requests if m == "PATCH"]
    assert any("/deployments/" in p for p in patched) and any("/services/" in p for p in patched)
    s.stop()
    after = len([m for m, _ in kube.requests if m == "PATCH"])
    time.sleep(0.8)
    assert len([m for m, _ in kube.requests if m == "PATCH"]) == after, "no renewal after teardown"
    assert names(kube, "Deployment", "Service") == set()
    assert denied(kube.requests, RUNNER_RULES) == []


def test_pod_in_another_namespace_gives_no_owner(kube: FakeKube, server: KubernetesServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRACE_POD_NAME", "runner-abc")
    monkeypatch.setenv("GRACE_POD_NAMESPACE", "prefect")  # an owner must live in the server's namespace
    s = server
    s._create()
    assert s.owner is None and "ownerReferences" not in kube.objects("Deployment")[0]["metadata"]
    s.stop()


# -- the lease and `grace cleanup --expired` ---------------------------------------------------------------------

def with_lease(obj: dict[str, Any], minutes: float) -> dict[str, Any]:
    obj = json.loads(json.dumps(obj))
    obj["metadata"]["annotations"] = {**obj["metadata"].get("annotations", {}),
                                      **lease_annotations(minutes * 60)}
    return obj


def test_lease_helpers() -> None:
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    ann = lease_annotations(900, at=now, holder="pod-x")
    assert ann == {LEASE_EXPIRES: "2026-12-01T12:15:00Z", "grace/lease-holder": "pod-x"}
    assert not expired(ann, now) and expired(ann, now + timedelta(minutes=15))
    assert not expired({}, now) and not expired({LEASE_EXPIRES: "soon"}, now), "no lease (or garbage): not expired"


def test_cleanup_expired_deletes_only_servers_whose_lease_ran_out(kube: FakeKube, cfg: Config,
                                                                  settings: ClusterSettings,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    objs = {o["metadata"]["name"] + "/" + o["kind"]: o for o in build_all(cfg, "a100", settings, "r1",
                                                                          ["gemma2-2b", "gemma2-9b", "llama3.1-8b"])}
    dead, fresh, manual = "jdoe-r1-gemma2-2b-vllm", "jdoe-r1-gemma2-9b-vllm", "jdoe-r1-llama3-1-8b-vllm"
    for kind in ("Service", "Deployment"):
        post(kube, with_lease(objs[f"{dead}/{kind}"], -5))  # its run died 5 minutes ago
        post(kube, with_lease(objs[f"{fresh}/{kind}"], 10))  # its run renews it
        post(kube, objs[f"{manual}/{kind}"])  # applied by hand: no lease, never reaped
    other = load_cluster_settings(ROOT / "config" / "cluster.yaml").model_copy(update={"name_prefix": "asmith"})
    theirs = next(o for o in build_all(cfg, "a100", other, "r1", ["gemma2-2b"]) if o["kind"] == "Deployment")
    post(kube, with_lease(theirs, -5))  # a lab mate's expired server: theirs to clean
    cron = cleanup_cronjob(settings, "r1")
    post(kube, cron)
    # what the CronJob controller does on its schedule: a Job from the template, running `grace cleanup --expired`
    job = kube.trigger_cronjob(cron["metadata"]["name"], NS)
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command == ["grace", "cleanup", "--expired"]
    assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert main([*command[1:], "--dry-run"]) == 0
    assert f"would delete Deployment/{dead}" in capsys.readouterr().out
    n = len(kube.requests)
    assert main(command[1:]) == 0  # as the Job's container runs it, with the runner's account
    out = capsys.readouterr().out
    left = names(kube, "Deployment", "Service")
    assert f"Deployment/{dead}" not in left and f"Service/{dead}" not in left
    assert {f"Deployment/{fresh}", f"Service/{fresh}", f"Deployment/{manual}", f"Service/{manual}",
            "Deployment/asmith-r1-gemma2-2b-vllm"} == left
    assert not any(p["metadata"]["name"].startswith(dead) for p in kube.objects("Pod")), "its pod went with it"
    assert "deleted 2 objects whose lease ran out" in out and "4 of yours kept" in out
    assert denied(kube.requests[n:], RUNNER_RULES) == [], "the CronJob's account may do what it does"
