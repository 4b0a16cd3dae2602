"""Word when a study run fails: a Prefect automation that sends a notification through the lab's block.

The automation reacts on the Prefect server to a run of flow `grace` from `grace/full-study` or
`grace/full-study-k8s` ending Failed, Crashed (its process was killed: nothing of the flow could report
it) or TimedOut, and sends the run's name, state, message (the flow names the failed model and stage
there), the model it was on (the `grace.model` label) and the UI link through a notification block.

Which block: `GRACE_NOTIFY_BLOCK=<block-type-slug>/<block-name>` (e.g. `slack-webhook/lab-alerts`,
`custom-webhook/lab-alerts`), or else the Prefect Variable `grace_notify_block` holding the same text.
`python -m flows.notify` (run by scripts/prefect-up.sh) creates or updates the automation when a block is
configured and says so when none is; `--off` deletes it.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta
from uuid import UUID

from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
from prefect.variables import Variable

AUTOMATION = "grace-run-failed"
ENV_VAR = "GRACE_NOTIFY_BLOCK"
VARIABLE = "grace_notify_block"
FLOW = "grace"
DEPLOYMENTS = ["full-study", "full-study-k8s"]
EVENTS = {"prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.TimedOut"}

SUBJECT = "Grace: flow run {{ flow_run.name }} {{ flow_run.state.name }}"
BODY = """\
Grace flow run {{ flow_run.name }} of {{ deployment.name }} ended {{ flow_run.state.name }}.
Study: {{ flow_run.parameters.get('study_id') or '(unnamed run)' }}
Model it was on: {{ (flow_run.labels or {}).get('grace.model') or '(none yet)' }}
What happened: {{ flow_run.state.message or flow_run.state.name }}
{{ flow_run|ui_url }}"""


def configured_block() -> str | None:
    """The block reference from the environment, else from the Prefect Variable; None when not configured."""
    ref = os.environ.get(ENV_VAR, "").strip()
    if ref:
        return ref
    value = Variable.get(VARIABLE, default=None)
    return str(value).strip() if value else None


def notification_block_id(ref: str) -> UUID:
    """The block document id behind `<block-type-slug>/<block-name>`; a clear error when it cannot notify."""
    if ref.count("/") != 1:
        raise ValueError(f"{ENV_VAR} / Variable {VARIABLE}: {ref!r} must be <block-type-slug>/<block-name>")
    try:
        block = Block.load(ref)
    except ValueError as exc:
        raise ValueError(f"notification block {ref!r} not found on this Prefect server: {exc}") from exc
    if not isinstance(block, NotificationBlock) or block._block_document_id is None:
        raise ValueError(f"block {ref!r} is a {type(block).__name__}, not a notification block")
    return block._block_document_id


def automation_for(block_id: UUID) -> AutomationCore:
    return AutomationCore(
        name=AUTOMATION,
        description=f"Notify the lab when a run of {FLOW} ({', '.join(DEPLOYMENTS)}) fails or crashes",
        trigger=EventTrigger(
            expect=EVENTS,
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related=[  # every spec must match: runs of flow `grace` (not its per-model subflows)
                {"prefect.resource.role": "flow", "prefect.resource.name": FLOW},  # from these deployments
                {"prefect.resource.role": "deployment", "prefect.resource.name": DEPLOYMENTS},
            ],
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[SendNotification(block_document_id=block_id, subject=SUBJECT, body=BODY)],
    )


def register(ref: str) -> UUID:
    """Create or update the one automation (idempotent: re-running the set-up leaves exactly one)."""
    automation = automation_for(notification_block_id(ref))
    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(AUTOMATION)
        if not existing:
            return client.create_automation(automation)
        keep, *extra = existing
        client.update_automation(keep.id, automation)
        for a in extra:
            client.delete_automation(a.id)
        return keep.id


def unregister() -> int:
    with get_client(sync_client=True) as client:
        existing = client.read_automations_by_name(AUTOMATION)
        for a in existing:
            client.delete_automation(a.id)
    return len(existing)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.notify", description=__doc__.splitlines()[0])
    parser.add_argument("--off", action="store_true", help="delete the automation")
    args = parser.parse_args(argv)
    if args.off:
        print(f"failure notifications: off ({unregister()} automation(s) {AUTOMATION} deleted)")
        return 0
    ref = configured_block()
    if not ref:
        print(f"failure notifications: not configured (set {ENV_VAR}=<block-type-slug>/<block-name> or the "
              f"Prefect Variable {VARIABLE} to a notification block, e.g. slack-webhook/lab-alerts, and run "
              "the set-up again)")
        return 0
    try:
        automation_id = register(ref)
    except ValueError as exc:
        print(f"failure notifications: {exc}", file=sys.stderr)
        return 2
    print(f"failure notifications: on - automation {AUTOMATION} ({automation_id}) sends through {ref} when a "
          f"run of {', '.join(DEPLOYMENTS)} fails or crashes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
