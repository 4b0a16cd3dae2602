"""Wait for a flow run to finish, print its state, the UI link, the results folder and the trial viewer (exit 1
unless it completed). Used by scripts/run-study.sh: `python -m flows.wait FLOW_RUN_ID`."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL

from flows.grace_flow import run_folder_name
from grace.view.links import VIEWER, served_url


def main(flow_run_id: str, timeout_s: float = 6 * 3600) -> int:
    ui = str(PREFECT_API_URL.value()).removesuffix("/api")
    deadline = time.monotonic() + timeout_s
    last = None
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            run = client.read_flow_run(UUID(flow_run_id))
            state = run.state
            if state and state.name != last:
                print(f"flow run {run.name}: {state.name}", flush=True)
                last = state.name
            if state and state.is_final():
                break
            time.sleep(3)
        else:
            print(f"still running after {timeout_s:.0f}s; watch it at {ui}/runs/flow-run/{flow_run_id}")
            return 1
        print(f"Prefect UI: {ui}/runs/flow-run/{flow_run_id}")
        rid = run_folder_name(run.parameters, run.name, run.id)
        run_dir = Path(run.parameters.get("out") or "results").resolve() / rid
        print(f"results: {run_dir}")
        print(f"trial viewer: {served_url(run_dir) or run_dir / VIEWER}")
        if state.is_completed():
            return 0
        print(f"flow run ended {state.name}: {state.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
