"""`grace archive`: a run's results as a local .tar.gz, from a local results folder or the results PVC.

Local (default): tars results/<run-id>/ (or --results-dir/<run-id>) into --out.
Cluster (--from-cluster): creates a short-lived helper pod (runner image) that mounts the results PVC
read-only, streams `tar czf - <run-id>` out of it with `kubectl exec` (kubectl must be on PATH; the Python
client's exec channel is text-only), and always deletes the helper pod. Nothing is deleted from the PVC.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from grace.checkpoint import atomic_path
from grace.errors import ServerError, UserInputError
from grace.manifests.build import dns_name, labels, pvc_name
from grace.manifests.settings import ClusterSettings, load_cluster_settings
from grace.serving.kubernetes import api_client_from_env, api_error


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("archive", help="tar a run's results into a local .tar.gz")
    p.add_argument("--run-id", required=True)
    p.add_argument("--out", type=Path, default=None, help="archive file (default: <run-id>.tar.gz)")
    p.add_argument("--results-dir", type=Path, default=Path("results"), help="local results folder")
    p.add_argument("--from-cluster", action="store_true", help="copy from the results PVC through a helper pod")
    p.add_argument("--cluster-config", type=Path, default=None)
    p.add_argument("--context", default=None, help="kubeconfig context")
    p.set_defaults(func=archive)


def archive_local(results_dir: Path, run_id: str, out: Path) -> int:
    """Tar results_dir/run_id into out (atomically); the number of files archived."""
    src = Path(results_dir) / run_id
    if not src.is_dir():
        raise UserInputError(f"{src}: no such run folder")
    n = 0
    with atomic_path(out) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for path in sorted(src.rglob("*")):
            tar.add(path, arcname=str(Path(run_id) / path.relative_to(src)), recursive=False)
            n += path.is_file()
    return n


def helper_pod(settings: ClusterSettings, run_id: str) -> dict:
    name = dns_name(settings.name_prefix, run_id, "archive")
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": settings.namespace,
                     "labels": labels(settings, run_id, "archive")},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 1000},
            "containers": [{
                "name": "archive", "image": settings.images.runner, "command": ["sleep", "3600"],
                "resources": {"requests": {"cpu": "500m", "memory": "512Mi"},
                              "limits": {"cpu": "500m", "memory": "512Mi"}},
                "volumeMounts": [{"name": "results", "mountPath": settings.results_mount, "readOnly": True}],
            }],
            "volumes": [{"name": "results", "persistentVolumeClaim": {
                "claimName": pvc_name(settings, "results"), "readOnly": True}}],
        },
    }


def archive_from_cluster(api: client.ApiClient, settings: ClusterSettings, run_id: str, out: Path,
                         timeout_s: float = 300) -> None:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        raise ServerError("--from-cluster streams the files with `kubectl exec`: install kubectl first")
    core = client.CoreV1Api(api)
    pod = helper_pod(settings, run_id)
    name, ns = pod["metadata"]["name"], settings.namespace
    try:
        core.create_namespaced_pod(ns, client.V1Pod.model_validate(pod))  # what the client does with a dict body
        deadline = time.monotonic() + timeout_s
        while (status := core.read_namespaced_pod(name, ns).status) is None or status.phase != "Running":
            if time.monotonic() > deadline:
                raise ServerError(f"helper pod {name} not Running after {timeout_s:.0f}s")
            time.sleep(2)
        with atomic_path(out) as tmp, open(tmp, "wb") as f:
            r = subprocess.run([kubectl, "exec", "-n", ns, name, "--", "tar", "czf", "-", "-C",
                                settings.results_mount, run_id], stdout=f, stderr=subprocess.PIPE)
            if r.returncode:
                raise ServerError(f"tar in {name} failed: {r.stderr.decode(errors='replace').strip()[:300]}")
    except ApiException as e:
        raise ServerError(f"helper pod {name}: {api_error(e)}") from None
    finally:
        try:
            core.delete_namespaced_pod(name, ns, grace_period_seconds=0)
        except ApiException:
            pass


def archive(args: argparse.Namespace) -> int:
    out = args.out or Path(f"{args.run_id}.tar.gz")
    if args.from_cluster:
        settings = load_cluster_settings(args.cluster_config)
        archive_from_cluster(api_client_from_env(args.context), settings, args.run_id, out)
        print(f"archived run {args.run_id} from PVC {pvc_name(settings, 'results')} to {out}")
    else:
        n = archive_local(args.results_dir, args.run_id, out)
        print(f"archived {n} files of {args.results_dir / args.run_id} to {out}")
    return 0
