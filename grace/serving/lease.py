"""No GPU outlives its run: a server's Deployment and Service are owned by the flow-run Job, and hold a lease.

Two ways a server could be left holding GPUs after its run is gone, and what ties it to the run instead:

- **In the cluster**, the flow runs in a pod of a Job that prefect-kubernetes creates. The server's Deployment and
  Service carry an `ownerReference` to that Job, so when the Job goes (its TTL after finishing, or a person
  deleting it) Kubernetes' garbage collector deletes the server too, even if the flow-run pod was killed
  (OOM, eviction, node drain) before it could run its own teardown. The pod finds its Job in its own metadata:
  its name and namespace from the downward API (GRACE_POD_NAME, GRACE_POD_NAMESPACE in the work pool's job
  template; HOSTNAME as a fallback), then its `ownerReferences` read through the API (`get pods`).
- **Everywhere** (outside the cluster this is the only tie), the objects carry a lease annotation
  (`grace/lease-expires`, an RFC 3339 time), renewed every `lease.renew_s` while the run is alive. `grace
  cleanup --expired` (run by the cleanup CronJob, grace.manifests.build.cleanup_cronjob) deletes a server whose
  lease has run out. A server created by hand (`kubectl apply` of `grace manifests`) carries no lease and is
  never touched by it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

LEASE_EXPIRES = "grace/lease-expires"
LEASE_HOLDER = "grace/lease-holder"
POD_NAME_ENV, POD_NAMESPACE_ENV = "GRACE_POD_NAME", "GRACE_POD_NAMESPACE"


def lease_annotations(duration_s: float, at: datetime | None = None, holder: str | None = None) -> dict[str, str]:
    """The annotations of a lease that runs out `duration_s` after `at` (now)."""
    expires = (at or datetime.now(UTC)) + timedelta(seconds=duration_s)
    out = {LEASE_EXPIRES: expires.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if holder:
        out[LEASE_HOLDER] = holder
    return out


def lease_expiry(annotations: dict[str, str] | None) -> datetime | None:
    """When the object's lease runs out; None when it has none (or an unreadable one)."""
    value = (annotations or {}).get(LEASE_EXPIRES)
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) if value else None
    except ValueError:
        return None


def expired(annotations: dict[str, str] | None, at: datetime | None = None) -> bool:
    expiry = lease_expiry(annotations)
    return expiry is not None and expiry <= (at or datetime.now(UTC))


def holder() -> str:
    """Who renews the lease: the flow-run pod, or this host and process."""
    return os.environ.get(POD_NAME_ENV) or f"{os.uname().nodename}/{os.getpid()}"


def own_pod() -> tuple[str, str | None] | None:
    """(name, namespace) of the pod this process runs in, from the downward API (or HOSTNAME in a pod)."""
    name = os.environ.get(POD_NAME_ENV)
    if not name and os.environ.get("KUBERNETES_SERVICE_HOST"):
        name = os.environ.get("HOSTNAME")
    return (name, os.environ.get(POD_NAMESPACE_ENV)) if name else None


def flow_run_owner(core: client.CoreV1Api, namespace: str) -> dict[str, Any] | None:
    """An ownerReference to the Job that runs this pod (the flow-run Job), or None: not in a pod, the pod is in
    another namespace (an owner must be in the same one), or no Job controls it. An error reading the pod is
    logged and gives None: the lease still ties the server to the run."""
    pod_ref = own_pod()
    if pod_ref is None:
        return None
    name, pod_ns = pod_ref
    if pod_ns and pod_ns != namespace:
        log.warning("this pod runs in namespace %s, the servers in %s: no owner reference (the lease holds them)",
                    pod_ns, namespace)
        return None
    try:
        pod = core.read_namespaced_pod(name, namespace)
    except ApiException as e:
        log.warning("cannot read this pod (%s/%s) for its flow-run Job: HTTP %s; the lease holds the servers",
                    namespace, name, e.status)
        return None
    for ref in (pod.metadata.owner_references if pod.metadata else None) or []:
        if ref.kind == "Job" and ref.api_version == "batch/v1" and ref.controller:
            # no blockOwnerDeletion: it would need the Job's finalizers permission, and nothing waits on it here
            return {"apiVersion": "batch/v1", "kind": "Job", "name": ref.name, "uid": ref.uid}
    return None


class LeaseRenewer:
    """Renews the lease of the objects `renew()` patches, every `every_s`, until stopped (a daemon thread).

    A failed renewal is logged and tried again at the next tick; the lease lasts three ticks at least
    (grace.manifests.settings.Lease), so one missed renewal does not let a live server's lease run out.
    """

    def __init__(self, renew: Callable[[dict[str, str]], None], duration_s: float, every_s: float) -> None:
        self.renew = renew
        self.duration_s = duration_s
        self.every_s = every_s
        self.renewals = 0
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="grace-lease", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.renew(lease_annotations(self.duration_s, holder=holder()))
                self.renewals += 1
            except Exception as e:  # noqa: BLE001 - keep renewing; the lease outlasts a few misses
                self.failures += 1
                log.warning("lease renewal failed (%s: %s); trying again in %.0f s", type(e).__name__, e,
                            self.every_s)

    def start(self) -> LeaseRenewer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
