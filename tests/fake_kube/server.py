"""A fake Kubernetes API server on 127.0.0.1 for Deployments, Services, Jobs, CronJobs, PVCs, Pods and Events.

No real kube-apiserver, KWOK, kind or k3s installs from PyPI, npm or Debian on this machine (Debian ships only
kubectl and etcd), so the tests start this instead. It speaks the same REST paths and JSON as the real API
server, so the official `kubernetes` client talks to it unchanged. Every request body it accepts is validated
against the real OpenAPI schema (kubernetes-validate, strict); an invalid body gets the API server's 422. A
Deployment's pod follows a `Scenario`: becomes Ready, or fails the way real pods do (image pull back-off,
unschedulable, OOMKilled + CrashLoopBackOff, or never ready), with the matching Events; `restart_pod` makes a
ready pod's container die and come back (restart count up, not ready, then ready) as the kubelet does.

Jobs run as the test directs (`job_outcome`, a `JobRun` per Job): the Job controller's pod (owned by the Job,
labelled `job-name` / `controller-uid`) ends Succeeded or Failed after `after_s` with the container's
termination message, is retried up to `backoffLimit`, and the Job gets its `Complete` or `Failed`
(BackoffLimitExceeded, DeadlineExceeded) condition; a `forever` pod keeps running (a flow-run Job). A CronJob is
stored and `trigger_cronjob` makes its Job the way the CronJob controller does. The garbage collector deletes
every object whose owners (by uid) are all gone, after each request, so deleting an owner cascades
(propagationPolicy Background or Foreground; Orphan strips the references; a Job deleted without a policy
orphans its pods, as batch/v1 does). PATCH takes a strategic-merge or JSON-merge patch of maps (lists are
replaced whole), validates the result against the schema and keeps it only if valid. `log` records each
create, patch and delete with the objects that existed at that moment, for tests of what came before what.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import kubernetes_validate
import yaml

PLURALS = {
    ("api/v1", "services"): "Service",
    ("api/v1", "pods"): "Pod",
    ("api/v1", "events"): "Event",
    ("api/v1", "persistentvolumeclaims"): "PersistentVolumeClaim",
    ("apis/apps/v1", "deployments"): "Deployment",
    ("apis/batch/v1", "jobs"): "Job",
    ("apis/batch/v1", "cronjobs"): "CronJob",
}
API_VERSION = {"Service": "v1", "Pod": "v1", "Event": "v1", "PersistentVolumeClaim": "v1",
               "Deployment": "apps/v1", "Job": "batch/v1", "CronJob": "batch/v1"}
# what a DELETE without a propagationPolicy does to dependents (batch/v1 Jobs orphan their pods, for history)
DEFAULT_PROPAGATION = {"Job": "Orphan", "CronJob": "Orphan"}
PATH = re.compile(r"^/(api/v1|apis/apps/v1|apis/batch/v1)/namespaces/([^/]+)/([a-z]+)(?:/([^/]+))?(?:/(status))?$")


class Scenario(StrEnum):
    READY = "ready"
    IMAGE_PULL = "image-pull"
    UNSCHEDULABLE = "unschedulable"
    OOM = "oom"
    NEVER_READY = "never-ready"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class JobRun:
    """How the pods of a Job end: after `after_s`, Succeeded (exit 0) or Failed (exit 1), with `message` as the
    container's termination message; `forever`: the pod keeps running (e.g. a flow-run Job)."""

    succeed: bool = True
    message: str = ""
    after_s: float = 0.3
    forever: bool = False


@dataclass(frozen=True)
class LogEntry:
    t: float  # time.monotonic()
    verb: str  # create, patch, delete (a deletion by the garbage collector: gc-delete)
    kind: str
    name: str
    existing: frozenset[str]  # "Kind/name" of every object at that moment, before the change


def merge_patch(target: Any, patch: Any) -> Any:
    """A JSON merge patch (RFC 7386), which is what a strategic-merge patch does to maps: keys merged, null
    deletes, anything else (lists included) replaced."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def match_labels(labels: dict[str, str], selector: str | None) -> bool:
    """Equality-based label selectors: k=v, k==v, k!=v, k, !k (comma-separated)."""
    for term in filter(None, (selector or "").split(",")):
        term = term.strip()
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k) != v:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def match_fields(obj: dict[str, Any], selector: str | None) -> bool:
    for term in filter(None, (selector or "").split(",")):
        k, v = term.split("=", 1)
        cur: Any = obj
        for part in k.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if cur != v:
            return False
    return True


class FakeKube:
    """Start with `with FakeKube() as kube:`; `kube.url`, `kube.kubeconfig(path)`, `kube.scenario`."""

    def __init__(self, version: str = "1.30", ready_after_s: float = 0.5) -> None:
        self.version = version
        self.ready_after_s = ready_after_s
        self.scenario = Scenario.READY
        self.scenarios: dict[str, Scenario] = {}  # per Deployment name
        self.store: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}  # (kind, ns) -> name -> obj
        self.requests: list[tuple[str, str]] = []
        self.rejected: list[str] = []
        self.log: list[LogEntry] = []
        self.bodies: dict[str, dict[str, Any]] = {}  # "Kind/name" -> the body as created (the last one)
        # how a Job's pods end (given the Job's body); default: each succeeds after 0.3 s with no message
        self.job_outcome: Callable[[dict[str, Any]], JobRun] = lambda job: JobRun()
        self.lock = threading.RLock()
        self._rv = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # -- lifecycle --------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> FakeKube:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "not-a-secret"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester", "namespace": namespace}}],
        }))
        return path

    # -- store helpers ----------------------------------------------------------------------------------
    def objects(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [o for (k, ns), objs in self.store.items() if k == kind and namespace in (None, ns)
                    for o in objs.values()]

    def all_objects(self) -> list[dict[str, Any]]:
        with self.lock:
            return [o for objs in self.store.values() for o in objs.values()]

    def _bucket(self, kind: str, ns: str) -> dict[str, dict[str, Any]]:
        return self.store.setdefault((kind, ns), {})

    def _note(self, verb: str, kind: str, name: str) -> None:
        existing = frozenset(f"{o['kind']}/{o['metadata']['name']}" for o in self.all_objects()
                             if o["kind"] != "Event")
        self.log.append(LogEntry(time.monotonic(), verb, kind, name, existing))

    def first(self, verb: str, kind: str, name_part: str = "") -> LogEntry:
        """The first log entry of `verb` on a `kind` whose name contains `name_part`."""
        return next(e for e in self.log if e.verb == verb and e.kind == kind and name_part in e.name)

    def _stamp(self, obj: dict[str, Any], kind: str, ns: str) -> dict[str, Any]:
        self._rv += 1
        meta = obj.setdefault("metadata", {})
        meta.update({"namespace": ns, "uid": str(uuid.uuid4()), "resourceVersion": str(self._rv),
                     "creationTimestamp": now()})
        obj["apiVersion"], obj["kind"] = API_VERSION[kind], kind
        return obj

    def _event(self, ns: str, pod: str, reason: str, message: str, type_: str = "Warning") -> None:
        name = f"{pod}.{uuid.uuid4().hex[:10]}"
        ev = {"metadata": {"name": name}, "involvedObject": {"kind": "Pod", "name": pod, "namespace": ns},
              "reason": reason, "message": message, "type": type_, "count": 1,
              "firstTimestamp": now(), "lastTimestamp": now(), "source": {"component": "kubelet"}}
        self._bucket("Event", ns)[name] = self._stamp(ev, "Event", ns)

    # -- simulation -------------------------------------------------------------------------------------
    def _create_pod_for(self, dep: dict[str, Any], ns: str) -> None:
        tmpl = dep["spec"]["template"]
        name = f"{dep['metadata']['name']}-{uuid.uuid4().hex[:5]}"
        pod = {"metadata": {"name": name, "labels": dict(tmpl["metadata"].get("labels", {})),
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                                 "name": dep["metadata"]["name"], "uid": dep["metadata"]["uid"]}]},
               "spec": json.loads(json.dumps(tmpl["spec"])),
               "status": {"phase": "Pending", "conditions": []}}
        self._bucket("Pod", ns)[name] = self._stamp(pod, "Pod", ns)
        self._check_schema(pod, "simulated Pod")
        dep["status"] = {"observedGeneration": 1, "replicas": 1, "unavailableReplicas": 1,
                         "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                                         "message": "Deployment does not have minimum availability."}]}
        dep["_created"] = datetime.now(UTC).timestamp()

    def restart_pod(self, deployment: str, down_s: float, reason: str = "OOMKilled", exit_code: int = 137) -> str:
        """The Deployment's running container dies and the kubelet restarts it, as after an OOM kill: restart
        count up, the pod not ready (CrashLoopBackOff back-off, then running while the server loads) for
        `down_s`, then ready again. Returns the pod's name."""
        with self.lock:
            dep = next(d for d in self.objects("Deployment") if d["metadata"]["name"] == deployment)
            ns = dep["metadata"]["namespace"]
            pod = next(p for p in self._bucket("Pod", ns).values()
                       if _owner_name(p) == deployment)
            cs = pod["status"]["containerStatuses"][0]
            cs.update(ready=False, started=False, restartCount=cs["restartCount"] + 1,
                      state={"waiting": {"reason": "CrashLoopBackOff",
                                         "message": f"back-off 10s restarting failed container={cs['name']}"}},
                      lastState={"terminated": {"reason": reason, "exitCode": exit_code, "startedAt": now(),
                                                "finishedAt": now()}})
            pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "True"},
                                           {"type": "Ready", "status": "False", "reason": "ContainersNotReady"}]
            dep["status"] = {"observedGeneration": 1, "replicas": 1, "unavailableReplicas": 1, "conditions": [
                {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                 "message": "Deployment does not have minimum availability."}]}
            self._event(ns, pod["metadata"]["name"], "BackOff", f"Back-off restarting failed container {cs['name']}")
            dep["_restart"] = {"pod": pod["metadata"]["name"], "running_at": datetime.now(UTC).timestamp() + down_s / 2,
                               "ready_at": datetime.now(UTC).timestamp() + down_s}
            self._check_schema(pod, "simulated Pod")
            return str(pod["metadata"]["name"])

    def _advance_restart(self, dep: dict[str, Any], ns: str) -> None:
        r = dep["_restart"]
        pod = self._bucket("Pod", ns).get(r["pod"])
        if pod is None:
            dep.pop("_restart")
            return
        cs = pod["status"]["containerStatuses"][0]
        t = datetime.now(UTC).timestamp()
        if t >= r["ready_at"]:
            cs.update(ready=True, started=True, state={"running": {"startedAt": now()}})
            pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "True"},
                                           {"type": "Ready", "status": "True"}]
            dep["status"] = {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "availableReplicas": 1,
                             "updatedReplicas": 1, "conditions": [
                                 {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                                  "message": "Deployment has minimum availability."}]}
            dep.pop("_restart")
        elif t >= r["running_at"] and "waiting" in cs["state"]:
            cs.update(started=True, state={"running": {"startedAt": now()}})
        self._check_schema(pod, "simulated Pod")

    def _advance(self) -> None:
        """Move every Deployment's pod along its scenario and every Job's pods along theirs (before each read)."""
        for (kind, ns), objs in list(self.store.items()):
            if kind == "Job":
                for job in list(objs.values()):
                    if "_run" in job and not job.get("_done"):
                        self._advance_job(job, ns)
            if kind != "Deployment":
                continue
            for dep in objs.values():
                if dep.get("_restart"):
                    self._advance_restart(dep, ns)
                if dep.get("_done"):
                    continue
                name = dep["metadata"]["name"]
                scenario = self.scenarios.get(name, self.scenario)
                pods = [p for p in self._bucket("Pod", ns).values()
                        if _owner_name(p) == name]
                if not pods:
                    continue
                pod = pods[0]
                c = pod["spec"]["containers"][0]
                status = pod["status"]
                elapsed = datetime.now(UTC).timestamp() - dep["_created"]
                if scenario == Scenario.UNSCHEDULABLE:
                    status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                             "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]
                    self._event(ns, pod["metadata"]["name"], "FailedScheduling",
                                "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes "
                                "are available: 3 No preemption victims found for incoming pod.")
                    dep["_done"] = True
                    continue
                status["conditions"] = [{"type": "PodScheduled", "status": "True"}]
                base = {"name": c["name"], "image": c["image"], "imageID": "", "ready": False, "restartCount": 0}
                if scenario == Scenario.IMAGE_PULL:
                    base["state"] = {"waiting": {"reason": "ImagePullBackOff",
                                                 "message": f'Back-off pulling image "{c["image"]}"'}}
                    self._event(ns, pod["metadata"]["name"], "Failed",
                                f'Failed to pull image "{c["image"]}": not found')
                    dep["_done"] = True
                elif scenario == Scenario.OOM:
                    back_off = {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}
                    base.update(restartCount=3, state={"waiting": back_off},
                                lastState={"terminated": {"reason": "OOMKilled", "exitCode": 137}})
                    status["phase"] = "Running"
                    self._event(ns, pod["metadata"]["name"], "BackOff", "Back-off restarting failed container vllm")
                    dep["_done"] = True
                elif scenario == Scenario.NEVER_READY or elapsed < self.ready_after_s:
                    base["state"] = {"running": {"startedAt": now()}}
                    status["phase"] = "Running"
                else:
                    base.update(ready=True, started=True, state={"running": {"startedAt": now()}})
                    status["phase"] = "Running"
                    status["conditions"].append({"type": "Ready", "status": "True"})
                    dep["status"] = {"observedGeneration": 1, "replicas": 1, "readyReplicas": 1,
                                     "availableReplicas": 1, "updatedReplicas": 1, "conditions": [
                                         {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                                          "message": "Deployment has minimum availability."}]}
                    dep["_done"] = True
                status["containerStatuses"] = [base]
                self._check_schema(pod, "simulated Pod")

    # -- Jobs and CronJobs ------------------------------------------------------------------------------
    def _start_job(self, job: dict[str, Any], ns: str) -> None:
        job["status"] = {"startTime": now(), "active": 0}
        job["_run"] = self.job_outcome(job)
        job["_started"] = time.monotonic()
        self._job_pod(job, ns)

    def _job_pod(self, job: dict[str, Any], ns: str) -> None:
        """The Job controller's pod for one attempt: owned by the Job, with its job-name and controller-uid."""
        tmpl = job["spec"]["template"]
        jname, uid = job["metadata"]["name"], job["metadata"]["uid"]
        name = f"{jname}-{uuid.uuid4().hex[:5]}"
        controller = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": jname,
                      "controller-uid": uid, "job-name": jname}
        pod = {"metadata": {"name": name, "labels": {**tmpl.get("metadata", {}).get("labels", {}), **controller},
                            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": jname, "uid": uid,
                                                 "controller": True, "blockOwnerDeletion": True}]},
               "spec": json.loads(json.dumps(tmpl["spec"])),
               "status": {"phase": "Running", "startTime": now(), "conditions": [
                   {"type": "PodScheduled", "status": "True"}, {"type": "Ready", "status": "True"}],
                   "containerStatuses": [
                       {"name": c["name"], "image": c["image"], "imageID": "", "ready": True, "started": True,
                        "restartCount": 0, "state": {"running": {"startedAt": now()}}}
                       for c in tmpl["spec"]["containers"]]}}
        pod = self._stamp(pod, "Pod", ns)
        pod["_ends_at"] = time.monotonic() + job["_run"].after_s
        self._bucket("Pod", ns)[name] = pod
        job["status"]["active"] = job["status"].get("active", 0) + 1
        self._check_schema(pod, "simulated Pod")

    def _job_condition(self, job: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self._note(type_.lower(), "Job", job["metadata"]["name"])  # "complete" / "failed"
        job["status"]["conditions"] = [{"type": type_, "status": "True", "reason": reason, "message": message,
                                        "lastProbeTime": now(), "lastTransitionTime": now()}]
        job["status"]["active"] = 0
        if type_ == "Complete":
            job["status"]["completionTime"] = now()
        job["_done"] = True

    def _advance_job(self, job: dict[str, Any], ns: str) -> None:
        run: JobRun = job["_run"]
        uid = job["metadata"]["uid"]
        pods = [p for p in self._bucket("Pod", ns).values()
                if any(o.get("uid") == uid for o in p["metadata"].get("ownerReferences", []))]
        deadline = job["spec"].get("activeDeadlineSeconds")
        if deadline is not None and time.monotonic() - job["_started"] >= deadline:
            for p in pods:
                if p["status"]["phase"] == "Running":
                    self._bucket("Pod", ns).pop(p["metadata"]["name"], None)
            self._job_condition(job, "Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
            return
        changed = False
        for pod in pods:
            if pod["status"]["phase"] != "Running" or run.forever or time.monotonic() < pod["_ends_at"]:
                continue
            changed = True
            code = 0 if run.succeed else 1
            pod["status"]["phase"] = "Succeeded" if run.succeed else "Failed"
            pod["status"]["conditions"] = [{"type": "PodScheduled", "status": "True"},
                                           {"type": "Ready", "status": "False", "reason": "PodCompleted"}]
            for cs in pod["status"]["containerStatuses"]:
                term = {"exitCode": code, "reason": "Completed" if run.succeed else "Error", "startedAt": now(),
                        "finishedAt": now()}
                if run.message:
                    term["message"] = run.message
                cs.update(ready=False, started=False, state={"terminated": term})
            self._check_schema(pod, "simulated Pod")
            st = job["status"]
            st["active"] = max(0, st.get("active", 1) - 1)
            if run.succeed:
                st["succeeded"] = st.get("succeeded", 0) + 1
                self._job_condition(job, "Complete", "", "")
                job["status"]["conditions"][0].pop("reason")
                job["status"]["conditions"][0].pop("message")
            else:
                st["failed"] = st.get("failed", 0) + 1
                if st["failed"] > job["spec"].get("backoffLimit", 6):
                    self._job_condition(job, "Failed", "BackoffLimitExceeded",
                                        "Job has reached the specified backoff limit")
                else:
                    self._job_pod(job, ns)  # the controller's retry
        if changed:
            self._check_schema(job, "simulated Job")

    def trigger_cronjob(self, name: str, namespace: str) -> dict[str, Any]:
        """What the CronJob controller does at a scheduled time: a Job from the jobTemplate, owned by the
        CronJob and named after it and the scheduled minute."""
        with self.lock:
            cron = self._bucket("CronJob", namespace)[name]
            tmpl = json.loads(json.dumps(cron["spec"]["jobTemplate"]))
            job = {"metadata": {"name": f"{name}-{int(time.time() // 60)}",
                                "labels": tmpl.get("metadata", {}).get("labels", {}),
                                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": name,
                                                     "uid": cron["metadata"]["uid"], "controller": True,
                                                     "blockOwnerDeletion": True}]},
                   "spec": tmpl["spec"]}
            job = self._stamp(job, "Job", namespace)
            self._note("create", "Job", job["metadata"]["name"])
            self._bucket("Job", namespace)[job["metadata"]["name"]] = job
            self._start_job(job, namespace)
            cron["status"] = {"lastScheduleTime": now(), "active": [{"kind": "Job", "name": job["metadata"]["name"],
                                                                    "namespace": namespace,
                                                                    "uid": job["metadata"]["uid"]}]}
            self._check_schema(job, "simulated Job")
            return _public(job)

    # -- the garbage collector --------------------------------------------------------------------------
    def _orphan(self, uid: str) -> None:
        for o in self.all_objects():
            refs = o["metadata"].get("ownerReferences")
            if refs and any(r.get("uid") == uid for r in refs):
                o["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid] or None
                if o["metadata"]["ownerReferences"] is None:
                    o["metadata"].pop("ownerReferences")

    def _gc(self) -> None:
        """Delete every object whose owners, by uid, are all gone (repeated: dependents of dependents)."""
        while True:
            uids = {o["metadata"]["uid"] for o in self.all_objects()}
            dangling = [(k, ns, name) for (k, ns), objs in self.store.items() for name, o in objs.items()
                        if o["metadata"].get("ownerReferences")
                        and not any(r.get("uid") in uids for r in o["metadata"]["ownerReferences"])]
            if not dangling:
                return
            for kind, ns, name in dangling:
                self._note("gc-delete", kind, name)
                self._bucket(kind, ns).pop(name, None)
                if kind == "Pod":
                    events = self._bucket("Event", ns)
                    for ename, e in list(events.items()):
                        if e["involvedObject"]["name"] == name:
                            events.pop(ename)

    def _check_schema(self, obj: dict[str, Any], what: str) -> str | None:
        clean = {k: v for k, v in obj.items() if not k.startswith("_")}
        try:
            kubernetes_validate.validate(clean, self.version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.absolute_path)
            msg = f"{what} {obj.get('kind')}/{obj.get('metadata', {}).get('name')}: {path}: {e.message}"
            self.rejected.append(msg)
            return msg
        return None

    # -- HTTP -------------------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body, default=str).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, reason: str, message: str) -> None:
                self._send(code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                  "message": message, "reason": reason, "code": code})

            def _route(self) -> tuple[str, str, str | None, dict[str, list[str]]] | None:
                url = urlparse(self.path)
                m = PATH.match(url.path)
                if not m or (m.group(1), m.group(3)) not in PLURALS:
                    self._status(404, "NotFound", f"the server could not find the requested resource ({url.path})")
                    return None
                return PLURALS[(m.group(1), m.group(3))], m.group(2), m.group(4), parse_qs(url.query)

            def do_GET(self) -> None:  # noqa: N802
                fake.requests.append(("GET", self.path))
                r = self._route()
                if r is None:
                    return
                kind, ns, name, q = r
                with fake.lock:
                    fake._advance()
                    bucket = fake._bucket(kind, ns)
                    if name:
                        if name not in bucket:
                            self._status(404, "NotFound", f'{kind.lower()}s "{name}" not found')
                            return
                        self._send(200, _public(bucket[name]))
                        return
                    items = [_public(o) for o in bucket.values()
                             if match_labels(o["metadata"].get("labels", {}), q.get("labelSelector", [None])[0])
                             and match_fields(o, q.get("fieldSelector", [None])[0])]
                    self._send(200, {"kind": f"{kind}List", "apiVersion": API_VERSION[kind],
                                     "metadata": {"resourceVersion": str(fake._rv)}, "items": items})

            def do_POST(self) -> None:  # noqa: N802
                fake.requests.append(("POST", self.path))
                r = self._route()
                if r is None:
                    return
                kind, ns, name, _ = r
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if body.get("kind") != kind:
                    self._status(400, "BadRequest", f"the body's kind {body.get('kind')!r} does not match {kind}")
                    return
                bad = fake._check_schema(body, "request body")
                if bad:
                    self._status(422, "Invalid", bad)
                    return
                meta = body["metadata"]
                if not meta.get("name") and meta.get("generateName"):  # the API server picks the suffix
                    meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
                obj_name = meta["name"]
                with fake.lock:
                    bucket = fake._bucket(kind, ns)
                    if obj_name in bucket:
                        self._status(409, "AlreadyExists", f'{kind.lower()}s "{obj_name}" already exists')
                        return
                    fake._note("create", kind, obj_name)
                    fake.bodies[f"{kind}/{obj_name}"] = json.loads(json.dumps(body))
                    obj = fake._stamp(body, kind, ns)
                    bucket[obj_name] = obj
                    if kind == "Deployment":
                        fake._create_pod_for(obj, ns)
                    if kind == "Job":
                        fake._start_job(obj, ns)
                    if kind == "PersistentVolumeClaim":
                        obj["status"] = {"phase": "Bound"}
                    self._send(201, _public(obj))

            def do_PATCH(self) -> None:  # noqa: N802
                fake.requests.append(("PATCH", self.path))
                r = self._route()
                if r is None:
                    return
                kind, ns, name, _ = r
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                patch = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if ctype not in ("application/strategic-merge-patch+json", "application/merge-patch+json") \
                        or not isinstance(patch, dict):
                    self._status(415, "UnsupportedMediaType", f"the fake takes merge patches of maps, not {ctype}")
                    return
                with fake.lock:
                    bucket = fake._bucket(kind, ns)
                    if not name or name not in bucket:
                        self._status(404, "NotFound", f'{kind.lower()}s "{name}" not found')
                        return
                    obj = bucket[name]
                    patched = merge_patch({k: v for k, v in obj.items() if not k.startswith("_")}, patch)
                    for k in ("name", "namespace", "uid", "creationTimestamp"):  # immutable
                        patched["metadata"][k] = obj["metadata"][k]
                    bad = fake._check_schema(patched, "patched object")
                    if bad:
                        self._status(422, "Invalid", bad)
                        return
                    fake._note("patch", kind, name)
                    fake._rv += 1
                    patched["metadata"]["resourceVersion"] = str(fake._rv)
                    obj.update(patched)
                    for k in [k for k in obj if not k.startswith("_") and k not in patched]:
                        obj.pop(k)
                    fake._gc()  # a patch that drops or breaks an owner reference
                    self._send(200, _public(obj))

            def do_DELETE(self) -> None:  # noqa: N802
                fake.requests.append(("DELETE", self.path))
                r = self._route()
                if r is None:
                    return
                kind, ns, name, q = r
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                options = json.loads(raw) if raw else {}
                policy = (q.get("propagationPolicy", [None])[0] or options.get("propagationPolicy")
                          or DEFAULT_PROPAGATION.get(kind, "Background"))
                with fake.lock:
                    bucket = fake._bucket(kind, ns)
                    if name:
                        if name not in bucket:
                            self._status(404, "NotFound", f'{kind.lower()}s "{name}" not found')
                            return
                        names = [name]
                    else:
                        sel = q.get("labelSelector", [None])[0]
                        names = [n for n, o in bucket.items() if match_labels(o["metadata"].get("labels", {}), sel)]
                    gone = []
                    for n in names:
                        fake._note("delete", kind, n)
                        gone.append(bucket.pop(n))
                    for o in gone:  # the garbage collector: dependents go with their owner, unless orphaned
                        if policy == "Orphan":
                            fake._orphan(o["metadata"]["uid"])
                    fake._gc()
                    if name and kind not in ("Deployment", "Job"):  # as the real server: the deleted object
                        self._send(200, _public(gone[0]))
                    elif name:  # Deployments and Jobs (garbage-collected dependents): a Status
                        self._send(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                         "details": {"name": name, "kind": kind.lower() + "s"}})
                    else:
                        self._send(200, {"kind": f"{kind}List", "apiVersion": API_VERSION[kind], "metadata": {},
                                         "items": [_public(o) for o in gone]})

        return Handler


def _owner_name(obj: dict[str, Any]) -> str | None:
    refs = obj["metadata"].get("ownerReferences") or [{}]
    return refs[0].get("name")


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}
