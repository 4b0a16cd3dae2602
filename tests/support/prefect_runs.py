"""What one flow run left on the session's Prefect server, and nothing of any other run; a flow run's process.

The tests share one Prefect server per session, so a read across the whole server (every artifact, every flow
run) can be satisfied by another test's run. These helpers read only the flow run under test, its subflow runs
(at any depth), their task runs, artifacts and logs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

import psutil
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
    TaskRunFilter,
    TaskRunFilterFlowRunId,
)
from prefect.client.schemas.objects import Artifact, FlowRun, Log, TaskRun
from prefect.exceptions import ObjectNotFound

T = TypeVar("T")
PAGE = 200  # the server's most per read (PREFECT_SERVER_API_DEFAULT_LIMIT): a longer list comes in pages


def _all(read: Callable[..., list[T]], **filters: Any) -> list[T]:
    out: list[T] = []
    while True:
        page = read(**filters, limit=PAGE, offset=len(out))
        out += page
        if len(page) < PAGE:
            return out


def run_tree(client: SyncPrefectClient, flow_run_id: UUID | str) -> list[FlowRun]:
    """The flow run, then its subflow runs and theirs (breadth first)."""
    tree = [client.read_flow_run(UUID(str(flow_run_id)))]
    level = [tree[0].id]
    while level:
        children = _all(client.read_flow_runs, flow_run_filter=FlowRunFilter(
            parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=level)))
        tree += children
        level = [r.id for r in children]
    return tree


def _ids(runs: list[FlowRun]) -> list[UUID]:
    assert runs, "no flow runs to read from"
    return [r.id for r in runs]


def task_runs_of(client: SyncPrefectClient, runs: list[FlowRun]) -> list[TaskRun]:
    in_runs = TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=_ids(runs)))
    return _all(client.read_task_runs, task_run_filter=in_runs)


def artifacts_of(client: SyncPrefectClient, runs: list[FlowRun]) -> list[Artifact]:
    """Every artifact made in these flow runs (those made inside their tasks too: they carry the flow run id)."""
    in_runs = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=_ids(runs)))
    return _all(client.read_artifacts, artifact_filter=in_runs)


def logs_of(client: SyncPrefectClient, runs: list[FlowRun]) -> list[Log]:
    """Every log line of these flow runs and of their task runs."""
    return _all(client.read_logs, log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=_ids(runs))))


def forget(client: SyncPrefectClient, *, deployment: str | None = None, work_pool: str | None = None) -> None:
    """Delete a deployment (flow/name) and a work pool if they exist, so that what a test reads back afterwards
    is what the test itself registered, not what an earlier test left."""
    if deployment:
        with contextlib.suppress(ObjectNotFound):
            client.delete_deployment(client.read_deployment_by_name(deployment).id)
    if work_pool:
        with contextlib.suppress(ObjectNotFound):
            client.delete_work_pool(work_pool)



def flow_run_process(flow_run_id: str) -> psutil.Process | None:
    """The top-most process the worker started for this flow run (not the vLLM server it started): the one to
    SIGKILL for a flow run that dies with no hook and no `finally` run."""
    found = {}
    for p in psutil.process_iter(["pid"]):
        try:
            if p.environ().get("PREFECT__FLOW_RUN_ID") == flow_run_id and "vllm" not in " ".join(p.cmdline()):
                found[p.pid] = p
        except psutil.Error:
            continue
    tops = [p for p in found.values() if p.ppid() not in found]
    return tops[0] if tops else None
