"""A model's vLLM server as a Kubernetes Deployment + Service (the cluster backend).

Same contract as LocalVLLMServer: entering creates the objects through the Kubernetes API, waits until the
Deployment is Available and the server answers (/v1/models lists the model and a one-token request works),
and returns the Endpoint; leaving always deletes what it created, found by label selector, on success,
failure and Ctrl-C. Pod trouble (ImagePullBackOff, Unschedulable, OOMKilled, CrashLoopBackOff, ...) ends the
wait early with the pod's state and its Warning events in the error.

Client: the official `kubernetes` Python client. It is synchronous like this context manager and
`wait_ready`, maintained by the Kubernetes project, reads kubeconfig and in-cluster service-account config,
and accepts the plain dict objects that grace.manifests.build makes for `grace manifests`, so the cluster
backend and the YAML files are one code path. (prefect-kubernetes uses its async twin, kubernetes-asyncio.)

Base URL: `base_url` (or GRACE_K8S_BASE_URL) when given; else the Service's cluster DNS name when Grace runs
inside the cluster (KUBERNETES_SERVICE_HOST is set); else a `kubectl port-forward` to the Service.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Protocol

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from grace.config import ModelConfig
from grace.errors import ServerError
from grace.manifests.build import (
    COMPONENT,
    L_MODEL,
    L_OWNER,
    L_RUN,
    PART_OF,
    label_value,
    server_name,
    service_url,
    vllm_deployment,
    vllm_service,
)
from grace.manifests.settings import ClusterSettings
from grace.serving.base import UP, Endpoint, Health, wait_ready
from grace.serving.inspect import inspect_endpoint
from grace.serving.local import free_port
from grace.serving.watch import probed

FATAL_WAITING = {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "CrashLoopBackOff",
                 "CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


class Listing(Protocol):
    """A Kubernetes list response (V1DeploymentList, V1ServiceList, ...), as far as a sweep reads it."""

    @property
    def items(self) -> Sequence[Any]: ...


# One kind of labelled object to sweep: its name, the client's list call and its delete call.
SweepKind = tuple[str, Callable[..., Listing], Callable[..., object]]


def api_client_from_env(context: str | None = None) -> client.ApiClient:
    """In-cluster service-account config when inside a pod, else the kubeconfig (KUBECONFIG / ~/.kube/config)."""
    try:
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config()
        else:
            # read KUBECONFIG now (the client reads it once, at import time)
            config.load_kube_config(config_file=os.environ.get("KUBECONFIG", "~/.kube/config"), context=context)
    except (config.ConfigException, OSError) as e:
        raise ServerError(f"no Kubernetes access: {e} (set KUBECONFIG or run inside the cluster)") from None
    return client.ApiClient()


def api_error(e: ApiException) -> str:
    try:
        msg = json.loads(e.body or "{}").get("message") or e.reason
    except ValueError:
        msg = e.reason
    return f"HTTP {e.status}: {msg}"


class KubernetesServer:
    """Context manager: create the model's Deployment + Service, yield its Endpoint, delete both on exit."""

    def __init__(
        self,
        model: ModelConfig,
        *,
        profile: str,
        settings: ClusterSettings,
        run_id: str = "adhoc",
        seed: int | None = 2026,
        api_client: client.ApiClient | None = None,
        base_url: str | None = None,
        start_timeout_s: float = 1800,
        poll_s: float = 2.0,
        unschedulable_grace_s: float = 120,
    ) -> None:
        self.model = model
        self.profile = profile
        self.settings = settings
        self.run_id = run_id
        self.namespace = settings.namespace
        self.name = server_name(settings, model, run_id)
        self.deployment = vllm_deployment(model, profile, settings, run_id, seed=seed)
        self.service = vllm_service(model, settings, run_id)
        self._api_client = api_client
        self.base_url = base_url or os.environ.get("GRACE_K8S_BASE_URL")
        self.start_timeout_s = start_timeout_s
        self.poll_s = poll_s
        self.unschedulable_grace_s = unschedulable_grace_s
        self.selector = ",".join([
            f"{PART_OF}=grace", f"{COMPONENT}=vllm", f"{L_OWNER}={label_value(settings.name_prefix)}",
            f"{L_RUN}={label_value(run_id)}", f"{L_MODEL}={label_value(model.name)}"])
        self._forward: subprocess.Popen[bytes] | None = None
        self._forward_port = 0
        self._started = 0.0
        self.endpoint: Endpoint | None = None

    # -- API ---------------------------------------------------------------------------------------------
    @property
    def api(self) -> client.ApiClient:
        if self._api_client is None:
            self._api_client = api_client_from_env()
        return self._api_client

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    # -- start -------------------------------------------------------------------------------------------
    def start(self) -> Endpoint:
        self._started = time.monotonic()
        try:
            self._create()
            self._wait_available()
            base = self._base_url()
            prof = self.model.profile(self.profile)
            watch = KubernetesWatch(self)
            self.endpoint = dataclasses.replace(
                Endpoint.of(base, self.model, batch_slots=prof.batch_slots, profile=prof), watch=watch)
            remaining = max(5.0, self.start_timeout_s - (time.monotonic() - self._started))
            wait_ready(self.endpoint, remaining, alive=self._fatal_reason, interval_s=self.poll_s)
            self.endpoint = inspect_endpoint(self.endpoint)
            watch.remember()
            return self.endpoint
        except BaseException:
            self.stop(raise_errors=False)
            raise

    def _create(self) -> None:
        try:
            # the client's own validation of a dict body (its validate_call), made explicit and typed
            self.core.create_namespaced_service(self.namespace, client.V1Service.model_validate(self.service))
            self.apps.create_namespaced_deployment(self.namespace, client.V1Deployment.model_validate(self.deployment))
        except ApiException as e:
            hint = (f" (left over from an earlier run? `grace cleanup --run-id {self.run_id}`)"
                    if e.status == 409 else "")
            raise ServerError(f"could not create {self.name} in namespace {self.namespace}: {api_error(e)}{hint}") \
                from None

    def _available(self) -> bool:
        dep = self.apps.read_namespaced_deployment(self.name, self.namespace)
        conds = (dep.status.conditions if dep.status else None) or []
        return any(c.type == "Available" and c.status == "True" for c in conds)

    def _wait_available(self) -> None:
        deadline = self._started + self.start_timeout_s
        while True:
            try:
                if self._available():
                    return
            except ApiException as e:
                raise ServerError(f"Deployment {self.name}: {api_error(e)}") from None
            fatal = self._fatal_reason()
            if fatal:
                raise ServerError(f"Deployment {self.name} ({self.model.name}) failed to start: {fatal}")
            if time.monotonic() >= deadline:
                raise ServerError(f"Deployment {self.name} ({self.model.name}) not Available after "
                                  f"{self.start_timeout_s:.0f}s; pods: {self.describe_pods() or 'none'}")
            time.sleep(self.poll_s)

    def _base_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/").removesuffix("/v1")
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            return service_url(self.settings, self.model, self.run_id)
        kubectl = shutil.which("kubectl")
        if not kubectl:
            raise ServerError("Grace runs outside the cluster and kubectl is not on PATH for a port-forward: "
                              "install kubectl or pass the server's URL (GRACE_K8S_BASE_URL)")
        self._forward_port = free_port()
        self._start_forward(kubectl)
        return f"http://127.0.0.1:{self._forward_port}"

    def _start_forward(self, kubectl: str) -> None:
        self._forward = subprocess.Popen(
            [kubectl, "port-forward", "-n", self.namespace, f"svc/{self.name}",
             f"{self._forward_port}:{self.settings.vllm_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    def reforward(self) -> bool:
        """Start `kubectl port-forward` again on the same local port if it exited (it binds to one pod and ends
        when that pod goes); True when it was restarted. Not exercised here: no real cluster."""
        kubectl = shutil.which("kubectl")
        if self._forward is None or self._forward.poll() is None or not kubectl:
            return False
        self._start_forward(kubectl)
        return True

    # -- diagnosis ---------------------------------------------------------------------------------------
    def _pods(self) -> list[Any]:
        return self.core.list_namespaced_pod(self.namespace, label_selector=self.selector).items

    def _warnings(self, pod: str, n: int = 4) -> list[str]:
        evs = self.core.list_namespaced_event(self.namespace, field_selector=f"involvedObject.name={pod}").items
        warn = [e for e in evs if e.type == "Warning"]
        return [f"{e.reason}: {e.message}" for e in warn[-n:]]

    def _pod_problems(self) -> list[tuple[bool, str]]:
        """(fatal, text) per problem seen on the Deployment's pods."""
        out: list[tuple[bool, str]] = []
        elapsed = time.monotonic() - self._started
        for pod in self._pods():
            pname = pod.metadata.name
            events = self._warnings(pname)
            ev = f"; events: {' | '.join(events)}" if events else ""
            for c in (pod.status.conditions or []) if pod.status else []:
                if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable":
                    out.append((elapsed >= self.unschedulable_grace_s,
                                f"pod {pname} Unschedulable: {c.message}{ev}"))
            for cs in (pod.status.container_statuses or []) if pod.status else []:
                last = cs.last_state.terminated if cs.last_state else None
                if last is not None and last.reason == "OOMKilled":
                    out.append((True, f"pod {pname} container {cs.name} OOMKilled (exit {last.exit_code}, "
                                      f"{cs.restart_count} restarts): raise memory_gib_request/limit{ev}"))
                    continue
                waiting = cs.state.waiting if cs.state else None
                if waiting is not None and waiting.reason in FATAL_WAITING:
                    out.append((True, f"pod {pname} container {cs.name} {waiting.reason}: {waiting.message}{ev}"))
        return out

    def _fatal_reason(self) -> str | None:
        try:
            fatal = [t for f, t in self._pod_problems() if f]
        except ApiException as e:
            return f"cannot read pods: {api_error(e)}"
        if self._forward is not None and self._forward.poll() is not None:
            fatal.append(f"kubectl port-forward exited with code {self._forward.returncode}")
        return "; ".join(fatal) or None

    def describe_pods(self) -> str:
        try:
            pods = self._pods()
            problems = [t for _, t in self._pod_problems()]
        except ApiException as e:
            return f"cannot read pods: {api_error(e)}"
        if problems:
            return "; ".join(problems)
        return ", ".join(f"{p.metadata.name} {p.status.phase if p.status else '?'}" for p in pods)

    # -- stop --------------------------------------------------------------------------------------------
    def stop(self, raise_errors: bool = True) -> list[str]:
        """Delete every Deployment and Service of this server by label selector; the names deleted."""
        if self._forward is not None:
            self._forward.terminate()
            try:
                self._forward.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._forward.kill()
            self._forward = None
        deleted: list[str] = []
        failures: list[str] = []
        # Sweep until a list finds nothing: a create that was in flight when we were interrupted may land
        # after the first sweep.
        for sweep in range(4):
            failures = []
            found = self._delete_sweep(deleted, failures)
            if not found and not failures:
                break
            time.sleep(0.2 * (sweep + 1))
        if failures and raise_errors:
            raise ServerError(f"teardown of {self.name} incomplete (run `grace cleanup --run-id {self.run_id}`): "
                              + "; ".join(failures))
        return deleted

    def _delete_sweep(self, deleted: list[str], failures: list[str]) -> int:
        found = 0
        kinds: list[SweepKind] = [
            ("Deployment", self.apps.list_namespaced_deployment, self.apps.delete_namespaced_deployment),
            ("Service", self.core.list_namespaced_service, self.core.delete_namespaced_service)]
        for kind, lister, deleter in kinds:
            try:
                items = lister(self.namespace, label_selector=self.selector).items
            except ApiException as e:
                failures.append(f"listing {kind}s: {api_error(e)}")
                continue
            found += len(items)
            for it in items:
                try:
                    deleter(it.metadata.name, self.namespace, propagation_policy="Background")
                    deleted.append(f"{kind}/{it.metadata.name}")
                except ApiException as e:
                    if e.status != 404:
                        failures.append(f"deleting {kind}/{it.metadata.name}: {api_error(e)}")
        return found

    def __enter__(self) -> Endpoint:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(raise_errors=et is None)


IMAGE_FATAL = FATAL_WAITING - {"CrashLoopBackOff"}  # a restart cannot fix these; a crash loop gets a few tries


class KubernetesWatch:
    """The server's Deployment and pods while a stage runs (grace.serving.gate): the Deployment deleted or
    scaled to 0, an image that cannot be pulled, or a container crash-looping (`crash_loop_restarts` restarts
    since the server last answered) mean gone; a pod restarting, rescheduled or not ready means down, and the
    stage waits up to the server's start timeout for the readiness probe to pass again."""

    def __init__(self, server: KubernetesServer, crash_loop_restarts: int = 3) -> None:
        self.server = server
        self.poll_s = server.poll_s
        self.crash_loop_restarts = crash_loop_restarts
        self._restarts: dict[str, int] = {}  # pod/container -> restart count when the server last answered

    @property
    def restart_timeout_s(self) -> float:
        return float(self.server.start_timeout_s)

    def remember(self) -> None:
        """Take the containers' restart counts as the baseline (the server answers now)."""
        try:
            pods = self.server._pods()
        except Exception:  # noqa: BLE001 - a baseline is best effort; the next check reads the pods again
            return
        self._restarts = {f"{p.metadata.name}/{cs.name}": cs.restart_count or 0
                          for p in pods for cs in ((p.status.container_statuses or []) if p.status else [])}

    def check(self, endpoint: Endpoint) -> Health:
        s = self.server
        try:
            dep = s.apps.read_namespaced_deployment(s.name, s.namespace)
            pods = s._pods()
        except ApiException as e:
            if e.status == 404:
                return Health("gone", f"Deployment {s.name} ({s.model.name}) was deleted")
            return Health("down", f"cannot read Deployment {s.name}: {api_error(e)}")
        except Exception as e:  # noqa: BLE001 - the API server itself unreachable: wait, it may come back
            return Health("down", f"Kubernetes API unreachable: {type(e).__name__}")
        if dep.metadata and dep.metadata.deletion_timestamp:
            return Health("gone", f"Deployment {s.name} ({s.model.name}) is being deleted")
        if dep.spec is not None and dep.spec.replicas == 0:
            return Health("gone", f"Deployment {s.name} ({s.model.name}) was scaled to 0 replicas")
        notes = []
        for pod in pods:
            pname = pod.metadata.name
            status = pod.status
            if status is not None and status.phase == "Failed":
                notes.append(f"pod {pname} {status.reason or 'failed'}: {status.message or ''}".rstrip(": "))
                continue
            for c in (status.conditions or []) if status else []:
                if c.type == "PodScheduled" and c.status == "False":
                    notes.append(f"pod {pname} {c.reason or 'not scheduled'}: {c.message}")
            for cs in (status.container_statuses or []) if status else []:
                before = self._restarts.get(f"{pname}/{cs.name}", 0)
                restarts = cs.restart_count or 0
                waiting = cs.state.waiting if cs.state else None
                last = cs.last_state.terminated if cs.last_state else None
                exit_ = f", last exit {last.reason or 'Error'} ({last.exit_code})" if last is not None else ""
                if waiting is not None and waiting.reason in IMAGE_FATAL:
                    return Health("gone", f"pod {pname} container {cs.name} {waiting.reason}: {waiting.message}")
                if (waiting is not None and waiting.reason == "CrashLoopBackOff"
                        and restarts - before >= self.crash_loop_restarts):
                    return Health("gone", f"pod {pname} container {cs.name} crash-looping ({restarts - before} "
                                          f"restarts since it last answered{exit_})")
                if restarts > before:
                    notes.append(f"pod {pname} container {cs.name} restarted (restart count {before} -> {restarts}"
                                 f"{exit_}), {'ready' if cs.ready else 'not ready'}")
                elif not cs.ready:
                    notes.append(f"pod {pname} container {cs.name} not ready")
        if not pods:
            notes.append(f"Deployment {s.name} has no pods")
        if s.reforward():
            notes.append("kubectl port-forward had exited: restarted")
        health = probed(endpoint)
        if health.state == "up":
            self.remember()
            return UP
        return Health("down", "; ".join([*notes, health.reason]) if notes else health.reason)
