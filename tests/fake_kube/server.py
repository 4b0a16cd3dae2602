"""A fake Kubernetes API server on 127.0.0.1 for Deployments, Services, Jobs, PVCs, Pods and Events.

No real kube-apiserver, KWOK, kind or k3s installs from PyPI, npm or Debian on this machine (Debian ships only
kubectl and etcd), so the tests start this instead. It speaks the same REST paths and JSON as the real API
server, so the official `kubernetes` client talks to it unchanged. Every request body it accepts is validated
against the real OpenAPI schema (kubernetes-validate, strict); an invalid body gets the API server's 422. A
Deployment's pod follows a `Scenario`: becomes Ready, or fails the way real pods do (image pull back-off,
unschedulable, OOMKilled + CrashLoopBackOff, or never ready), with the matching Events; `restart_pod` makes a
ready pod's container die and come back (restart count up, not ready, then ready) as the kubelet does.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
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
}
API_VERSION = {"Service": "v1", "Pod": "v1", "Event": "v1", "PersistentVolumeClaim": "v1",
               "Deployment": "apps/v1", "Job": "batch/v1"}
PATH = re.compile(r"^/(api/v1|apis/apps/v1|apis/batch/v1)/namespaces/([^/]+)/([a-z]+)(?:/([^/]+))?(?:/(status))?$")


class Scenario(StrEnum):
    READY = "ready"
    IMAGE_PULL = "image-pull"
    UNSCHEDULABLE = "unschedulable"
    OOM = "oom"
    NEVER_READY = "never-ready"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
                       if p["metadata"]["ownerReferences"][0]["name"] == deployment)
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
        """Move every Deployment's pod along its scenario (called before each read)."""
        for (kind, ns), objs in list(self.store.items()):
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
                        if p["metadata"]["ownerReferences"][0]["name"] == name]
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
                obj_name = body["metadata"]["name"]
                with fake.lock:
                    bucket = fake._bucket(kind, ns)
                    if obj_name in bucket:
                        self._status(409, "AlreadyExists", f'{kind.lower()}s "{obj_name}" already exists')
                        return
                    obj = fake._stamp(body, kind, ns)
                    bucket[obj_name] = obj
                    if kind == "Deployment":
                        fake._create_pod_for(obj, ns)
                    if kind == "PersistentVolumeClaim":
                        obj["status"] = {"phase": "Bound"}
                    self._send(201, _public(obj))

            def do_DELETE(self) -> None:  # noqa: N802
                fake.requests.append(("DELETE", self.path))
                r = self._route()
                if r is None:
                    return
                kind, ns, name, q = r
                with fake.lock:
                    bucket = fake._bucket(kind, ns)
                    if name:
                        if name not in bucket:
                            self._status(404, "NotFound", f'{kind.lower()}s "{name}" not found')
                            return
                        gone = [bucket.pop(name)]
                    else:
                        sel = q.get("labelSelector", [None])[0]
                        gone = [bucket.pop(n) for n, o in list(bucket.items())
                                if match_labels(o["metadata"].get("labels", {}), sel)]
                    for o in gone:  # garbage collection of owned pods (Deployments; Jobs by job-name)
                        fake._collect(kind, ns, o["metadata"]["name"])
                    if name and kind not in ("Deployment", "Job"):  # as the real server: the deleted object
                        self._send(200, _public(gone[0]))
                    elif name:  # Deployments and Jobs (garbage-collected dependents): a Status
                        self._send(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                         "details": {"name": name, "kind": kind.lower() + "s"}})
                    else:
                        self._send(200, {"kind": f"{kind}List", "apiVersion": API_VERSION[kind], "metadata": {},
                                         "items": [_public(o) for o in gone]})

        return Handler

    def _collect(self, kind: str, ns: str, name: str) -> None:
        if kind not in ("Deployment", "Job"):
            return
        pods = self._bucket("Pod", ns)
        for pname, p in list(pods.items()):
            owners = p["metadata"].get("ownerReferences", [])
            if owners and owners[0]["name"] == name:
                pods.pop(pname)
                events = self._bucket("Event", ns)
                for ename, e in list(events.items()):
                    if e["involvedObject"]["name"] == pname:
                        events.pop(ename)


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if not k.startswith("_")}
