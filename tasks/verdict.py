"""The verdict on the run's badge: Prefect states whose name carries it.

Prefect's UI colours a state's badge by its type and writes its name on it (prefect/server/ui-v2, read at
3.9.1: state-badge's classes by `type`, its text `name`; the runs list and the run graph alike), and a run's
message is the badge's tooltip and the run page's state line. So:
- the flow run and each model's subflow end Completed named "Fit" or "Not fit" (Failed named "Not fit" when
  `fail_on_unfit`), with the verdict as the message;
- a stage that breaches a data-quality limit ends Failed named "Not fit" (red, not green), with the breach as
  its message; it is not retried (a rerun would give the same replies) and the model goes on to its next stage;
- a model stopped by its preflight ends Failed named "Stopped at preflight".
"""

from __future__ import annotations

from typing import Any

from prefect.states import Completed, Failed, State

from grace.report.verdict import Verdict, verdict_message

FIT, NOT_FIT, STOPPED = "Fit", "Not fit", "Stopped at preflight"


def stage_state(summary: dict[str, Any], breaches: list[str], where: str) -> dict[str, Any] | State[Any]:
    """A stage task's return: its summary, or - over a limit - a Failed "Not fit" state carrying the summary."""
    if not breaches:
        return summary
    return Failed(name=NOT_FIT, message=f"{where}: {'; '.join(breaches)}", data={**summary, "limits": breaches})


def is_not_fit(state: State[Any]) -> bool:
    return state.is_failed() and state.name == NOT_FIT


def stage_outcome(state: State[Any]) -> dict[str, Any]:
    """A stage task's summary from its final state: a "Not fit" stage's too; any other failure is raised."""
    data = state.result(raise_on_failure=not is_not_fit(state))
    if not isinstance(data, dict):  # a stage's task always returns its summary: anything else is a bug
        raise TypeError(f"a stage ended {state.name} without its summary: {data!r}")
    return data


def verdict_state(verdicts: list[Verdict], data: Any = None, fail_on_unfit: bool = False,
                  note: str = "") -> State[Any]:
    """Completed "Fit" / "Not fit" (Failed "Not fit" with `fail_on_unfit`), the verdict as the message."""
    message = verdict_message(verdicts) + note
    unfit = any(not v.fit for v in verdicts)
    if unfit and fail_on_unfit:
        return Failed(name=NOT_FIT, message=message, data=data)
    return Completed(name=NOT_FIT if unfit else FIT if verdicts else "Completed", message=message, data=data)
