"""The flow-run process dies mid-model (SIGKILL: no hook, no finally runs): no server may outlive it, and a
new run with the same run id resumes where the dead one stopped."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from prefect.deployments import run_deployment

from tests.conftest import vllm_processes
from tests.test_prefect_flow import wait_final

pytestmark = [pytest.mark.faults, pytest.mark.prefect]


def flow_run_process(flow_run_id: str) -> psutil.Process | None:
    """The top-most process the worker started for this flow run (not the vLLM server it started)."""
    found = {}
    for p in psutil.process_iter(["pid"]):
        try:
            if p.environ().get("PREFECT__FLOW_RUN_ID") == flow_run_id and "vllm" not in " ".join(p.cmdline()):
                found[p.pid] = p
        except psutil.Error:
            continue
    tops = [p for p in found.values() if p.ppid() not in found]
    return tops[0] if tops else None


@pytest.mark.timeout(1200)  # a killed run and its rerun, 120 rows each way: 250-300 s measured, loaded
def test_killed_flow_process_leaves_no_server_and_rerun_resumes(
    full_study_deployment: str, prefect_worker: object, tmp_path: Path
) -> None:
    params = {"models": ["toy"], "studies": ["study2"], "experiments": ["exp1"], "sample": False, "limit": 120,
              "max_tokens": 16, "concurrency": 2, "run_id": "killed-run", "out": str(tmp_path)}
    run = run_deployment(full_study_deployment, parameters=params, timeout=0)
    ckpt = tmp_path / "killed-run" / "toy" / "study2" / "exp1.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if ckpt.exists() and len(ckpt.read_bytes().splitlines()) >= 10:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the flow never wrote rows")
    proc = flow_run_process(str(run.id))
    assert proc is not None, "flow-run process not found"
    servers = vllm_processes(run.id)
    assert servers, "a vLLM server should be running mid-model"
    os.kill(proc.pid, signal.SIGKILL)
    t0 = time.monotonic()
    alive = psutil.wait_procs(servers, timeout=60)[1]
    assert not alive, f"vLLM server outlived its flow run by 60 s: {[p.pid for p in alive]}"
    print(f"server gone {time.monotonic() - t0:.1f}s after the flow-run process was killed")
    done_before = {json.loads(x)["trial_id"] for x in ckpt.read_text().splitlines() if x.endswith("}")}
    assert 0 < len(done_before) < 120

    rerun = wait_final(run_deployment(full_study_deployment, parameters=params, timeout=0).id)
    assert not vllm_processes(rerun.id), "the rerun's server is gone too"
    assert rerun.state.is_completed(), rerun.state.message
    lines = [json.loads(x) for x in ckpt.read_text().splitlines() if x.strip()]
    keys = [r["trial_id"] for r in lines]
    assert len(set(keys)) == 120, "every trial exactly once"
    redone = len(keys) - len(set(keys))
    assert redone == 0, f"{redone} trials were asked twice"
    stages = json.loads((tmp_path / "killed-run" / "run.json").read_text())["summary"]["stages"]
    assert stages[0]["done_before"] == len(done_before)
