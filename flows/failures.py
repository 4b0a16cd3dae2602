"""Where a run stopped: the model and stage behind a failure, for the flow's failure message and the lab's alert.

The stage is read back from the Prefect API (the model subflow's failed task run: `study1-exp1`,
`extract-study2`, ...), so the stage tasks need not report it themselves. The model the run is on is kept
as a label of the flow run (`grace.model`), which the failure notification shows even when the flow-run
process was killed and nothing of the flow could write a message (a Crashed run).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    TaskRunFilter,
    TaskRunFilterFlowRunId,
    TaskRunFilterState,
    TaskRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import TaskRunSort
from prefect.states import State

from grace.errors import ServerError
from grace.serving.prefetch import PrefetchError
from tasks.verdict import NOT_FIT

log = logging.getLogger(__name__)
MODEL_LABEL = "grace.model"
_PREFECT_PREFIX = re.compile(r"^(Flow|Task) run encountered an exception: ")


def failed_stage(state: State[Any]) -> str:
    """The stage a model subflow failed at: its failed task run's name, or `serve` when the model's server
    could not be brought up (no task failed), `prefetch` when its weights could not be made ready (fetched
    ahead in the previous model's subflow), or `setup` for anything else before the first stage."""
    child = state.state_details.flow_run_id
    names: list[str] = []
    if child is not None:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(
                task_run_filter=TaskRunFilter(
                    flow_run_id=TaskRunFilterFlowRunId(any_=[child]),
                    state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.FAILED,
                                                                                 StateType.CRASHED])),
                ),
                sort=TaskRunSort.EXPECTED_START_TIME_ASC,
            )
        names = [r.name for r in runs if not (r.state and r.state.name == NOT_FIT)]  # over a limit: it finished
    if names:
        return ", ".join(dict.fromkeys(names))
    exc = state.result(raise_on_failure=False)
    if isinstance(exc, PrefetchError):
        return "prefetch"
    return "serve" if isinstance(exc, ServerError) else "setup"


def describe(model: str, state: State[Any]) -> str:
    """One line for a model that did not finish: '<stage> failed: <Prefect's state message>'."""
    try:
        stage = failed_stage(state)
    except Exception as exc:  # the message must not hide the real failure behind a lookup error
        log.warning("could not read the failed stage of %s: %s", model, exc)
        stage = "unknown stage"
    return f"{stage} failed: {reason(state)}"


def reason(state: State[Any]) -> str:
    """A failed state's message without Prefect's 'Flow run encountered an exception: ' prefix."""
    return _PREFECT_PREFIX.sub("", state.message or "") or state.name or state.type.value


def failure_message(failures: dict[str, str]) -> str:
    """The flow's own failure message: every model (or run step) that did not finish, and where."""
    parts = "; ".join(f"{name}: {why}" for name, why in failures.items())
    return f"{len(failures)} step(s) did not finish - {parts}; retry the flow run (or start the study again) to resume"


def label_current_model(flow_run_id: UUID | str | None, model: str) -> None:
    """Record on the flow run which model it is on (shown by the failure notification of a Crashed run)."""
    if flow_run_id is None:
        return
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run_labels(UUID(str(flow_run_id)), {MODEL_LABEL: model})
    except Exception as exc:  # a label is a convenience: never fail a study run over it
        log.warning("could not label the flow run with %s=%s: %s", MODEL_LABEL, model, exc)
