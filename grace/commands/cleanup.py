"""`grace cleanup`: delete Grace's labelled objects of one run (or all of yours) in the cluster namespace, or
(`--expired`, the cleanup CronJob's command) the servers whose lease ran out (grace.serving.lease)."""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from grace.errors import ServerError, UserInputError
from grace.manifests.build import L_OWNER, L_RUN, PART_OF, label_value
from grace.manifests.settings import ClusterSettings, load_cluster_settings
from grace.serving.kubernetes import SweepKind, api_client_from_env, api_error
from grace.serving.lease import expired, lease_expiry


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cleanup", help="delete Grace's Kubernetes objects of a run (--run-id) or all of yours (--all)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--run-id", help="only objects labelled with this run id")
    g.add_argument("--all", action="store_true", help="every Grace object of your name prefix in the namespace")
    g.add_argument("--expired", action="store_true",
                   help="your servers (Deployments, Services) whose lease ran out: their run is gone")
    p.add_argument("--include-pvcs", action="store_true", help="also delete the PVCs (results and model cache!)")
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    p.add_argument("--cluster-config", type=Path, default=None)
    p.add_argument("--context", default=None, help="kubeconfig context")
    p.set_defaults(func=cleanup)


def selector(settings: ClusterSettings, run_id: str | None) -> str:
    """Grace's objects of this user (name prefix) and, if given, of one run."""
    terms = [f"{PART_OF}=grace", f"{L_OWNER}={label_value(settings.name_prefix)}"]
    if run_id:
        terms.append(f"{L_RUN}={label_value(run_id)}")
    return ",".join(terms)


def delete_labelled(api: client.ApiClient, settings: ClusterSettings, run_id: str | None, include_pvcs: bool,
                    dry_run: bool = False) -> list[str]:
    """Delete (or list) Jobs, Deployments, Services, Pods and, if asked, PVCs; the 'Kind/name' handled."""
    core, apps, batch = client.CoreV1Api(api), client.AppsV1Api(api), client.BatchV1Api(api)
    ns, sel = settings.namespace, selector(settings, run_id)
    kinds: list[SweepKind] = [
        ("Job", batch.list_namespaced_job, batch.delete_namespaced_job),
        ("Deployment", apps.list_namespaced_deployment, apps.delete_namespaced_deployment),
        ("Service", core.list_namespaced_service, core.delete_namespaced_service),
        ("Pod", core.list_namespaced_pod, core.delete_namespaced_pod)]
    if run_id is None:  # all of yours: the cleanup CronJob too (it belongs to no run)
        kinds.append(("CronJob", batch.list_namespaced_cron_job, batch.delete_namespaced_cron_job))
    if include_pvcs:
        kinds.append(("PersistentVolumeClaim", core.list_namespaced_persistent_volume_claim,
                      core.delete_namespaced_persistent_volume_claim))
    done: list[str] = []
    try:
        for kind, lister, deleter in kinds:
            for it in lister(ns, label_selector=sel).items:
                if not dry_run:
                    try:
                        deleter(it.metadata.name, ns, propagation_policy="Background")
                    except ApiException as e:
                        if e.status != 404:
                            raise
                done.append(f"{kind}/{it.metadata.name}")
    except ApiException as e:
        raise ServerError(f"cleanup in namespace {ns}: {api_error(e)}") from None
    return done


def delete_expired(api: client.ApiClient, settings: ClusterSettings, dry_run: bool = False,
                   at: datetime | None = None) -> tuple[list[str], list[str]]:
    """Delete (or list) your Deployments and Services whose lease ran out; ('Kind/name' deleted, those spared:
    a fresh lease, or none at all, e.g. applied by hand)."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    ns, sel = settings.namespace, selector(settings, None)
    kinds: list[SweepKind] = [
        ("Deployment", apps.list_namespaced_deployment, apps.delete_namespaced_deployment),
        ("Service", core.list_namespaced_service, core.delete_namespaced_service)]
    done: list[str] = []
    spared: list[str] = []
    try:
        for kind, lister, deleter in kinds:
            for it in lister(ns, label_selector=sel).items:
                ref = f"{kind}/{it.metadata.name}"
                if not expired(it.metadata.annotations, at):
                    spared.append(ref)
                    continue
                if not dry_run:
                    try:
                        deleter(it.metadata.name, ns, propagation_policy="Background")
                    except ApiException as e:
                        if e.status != 404:
                            raise
                done.append(f"{ref} (lease ran out {lease_expiry(it.metadata.annotations):%Y-%m-%d %H:%M:%S} UTC)")
    except ApiException as e:
        raise ServerError(f"cleanup --expired in namespace {ns}: {api_error(e)}") from None
    return done, spared


def cleanup(args: argparse.Namespace) -> int:
    settings = load_cluster_settings(args.cluster_config)
    verb = "would delete" if args.dry_run else "deleted"
    if args.expired:
        gone, spared = delete_expired(api_client_from_env(args.context), settings, args.dry_run)
        for d in gone:
            print(f"{verb} {d}")
        print(f"{verb} {len(gone)} objects whose lease ran out in namespace {settings.namespace}; "
              f"{len(spared)} of yours kept (lease fresh, or none)")
        return 0
    if args.run_id is not None and not args.run_id.strip():
        raise UserInputError("--run-id must not be empty")
    done = delete_labelled(api_client_from_env(args.context), settings, args.run_id, args.include_pvcs,
                           args.dry_run)
    for d in done:
        print(f"{verb} {d}")
    scope = f"run {args.run_id}" if args.run_id else f"all of {settings.name_prefix}"
    kept = "" if args.include_pvcs else " (PVCs kept; --include-pvcs deletes them)"
    print(f"{verb} {len(done)} objects of {scope} in namespace {settings.namespace}{kept}")
    return 0
