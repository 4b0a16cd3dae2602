"""Orchestration overhead: `prefect deployment run grace/full-study` (real Prefect server + process worker)
vs the same work through grace.pipeline in a fresh process (benchmarks/direct_run.py).

Both runs use the same already-running vLLM server (the flow's `endpoint` parameter), so the difference is
Prefect alone: CLI submission, worker pick-up (poll interval PREFECT_WORKER_QUERY_SECONDS), the flow-run
process, flow/task-run bookkeeping and artifacts. A warm-up direct run goes first so both measured runs
find the server equally warm.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import httpx

from benchmarks.common import Row, log, ratio
from grace.paths import project_root
from grace.serving import Endpoint

BENCH = "prefect"
ROOT = project_root()
PREFECT = str(ROOT / ".venv" / "bin" / "prefect")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


@contextlib.contextmanager
def prefect_stack(home: Path, poll_s: float) -> Iterator[dict[str, str]]:
    """A Prefect server with its own SQLite home, grace/full-study deployed, one process worker."""
    url = f"http://127.0.0.1:{_free_port()}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": url, "PREFECT_SERVER_ANALYTICS_ENABLED":
           "false", "PREFECT_WORKER_QUERY_SECONDS": str(poll_s), "PREFECT_WORKER_PREFETCH_SECONDS": str(poll_s)}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        port = url.split(":")[2].split("/")[0]
        procs.append(subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", port], env=env,
                                      stdout=open(home / "server.log", "wb"), stderr=subprocess.STDOUT,
                                      start_new_session=True, cwd=home))
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            if procs[0].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("Prefect server did not start: " + (home / "server.log").read_text()[-800:])
            time.sleep(1)
        for args in (["work-pool", "create", "grace-local", "--type", "process", "--overwrite"],
                     ["deploy", "--name", "full-study"]):
            subprocess.run([PREFECT, "--no-prompt", *args], env=env, cwd=ROOT, check=True, capture_output=True,
                           timeout=180)
        procs.append(subprocess.Popen([PREFECT, "worker", "start", "--pool", "grace-local", "--type", "process"],
                                      env=env, cwd=ROOT, stdout=open(home / "worker.log", "wb"),
                                      stderr=subprocess.STDOUT, start_new_session=True))
        time.sleep(3)
        yield env
    finally:
        for p in reversed(procs):
            _stop(p)


class DirectRunFailed(RuntimeError):
    """The direct run (grace.pipeline) failed: its last stderr line."""


def _direct(ep: Endpoint, out: Path, run_id: str, experiments: list[str]) -> float:
    t0 = time.perf_counter()
    got = subprocess.run([sys.executable, "-m", "benchmarks.direct_run", "--out", str(out), "--run-id", run_id,
                          "--endpoint", ep.base_url, "--models", ep.model, "--experiments", *experiments],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    if got.returncode != 0:
        raise DirectRunFailed(got.stderr.strip().splitlines()[-1] if got.stderr.strip() else f"exit {got.returncode}")
    return time.perf_counter() - t0


def _prefect(env: dict[str, str], ep: Endpoint, out: Path, run_id: str, experiments: list[str]) -> dict[str, float]:
    from prefect.client.orchestration import SyncPrefectClient

    params = {"models": [ep.model], "out": str(out), "run_id": run_id, "endpoint": ep.base_url,
              "experiments": experiments}
    cmd = [PREFECT, "--no-prompt", "deployment", "run", "grace/full-study"]
    for k, v in params.items():
        cmd += ["--param", f"{k}={json.dumps(v) if not isinstance(v, str) else v}"]
    t0 = time.perf_counter()
    got = subprocess.run(cmd, env=env, cwd=ROOT, check=True, capture_output=True, text=True, timeout=120)
    submitted = time.perf_counter() - t0
    fid = next(w for line in got.stdout.splitlines() if "UUID" in line for w in line.split() if len(w) == 36)
    with SyncPrefectClient(env["PREFECT_API_URL"]) as client:
        while True:
            run = client.read_flow_run(UUID(fid))
            if run.state and run.state.is_final():
                break
            if time.perf_counter() - t0 > 600:
                raise RuntimeError("Prefect run did not finish in 600 s")
            time.sleep(0.25)
        wall = time.perf_counter() - t0
        if not run.state.is_completed():
            raise RuntimeError(f"Prefect run ended {run.state.name}: {run.state.message}")
        tasks = client.read_task_runs()
        flows = client.read_flow_runs()
    in_flow = (run.end_time - run.start_time).total_seconds() if run.start_time and run.end_time else float("nan")
    return {"wall": wall, "submit": submitted, "in_flow": in_flow, "tasks": len(tasks), "flows": len(flows)}


def run(ep: Endpoint, *, poll_s: float = 2.0, experiments: list[str] | None = None, trials: int = 20) -> list[Row]:
    """`trials`: rows in the sample study (10 per study x 2 studies)."""
    exps = experiments or ["exp1", "exp2"]
    with tempfile.TemporaryDirectory(prefix="grace-bench-prefect-") as d:
        home = Path(d)
        log(f"prefect: warm-up direct run ({'+'.join(exps)} on the two samples)")
        caveat = ""
        try:
            _direct(ep, home / "out", "warm", exps)
        except DirectRunFailed as e:
            if exps == ["exp1"]:
                raise
            caveat = f"; {'+'.join(exps)} failed in grace.pipeline ({str(e)[:90]}): exp1 only"
            log(f"prefect: direct run failed ({e}); measuring exp1 only")
            exps = ["exp1"]
            _direct(ep, home / "out", "warm", exps)
        log("prefect: starting a Prefect server, deploying grace/full-study, starting a worker")
        with prefect_stack(home, poll_s) as env:
            log("prefect: deployment run, then the same work directly")
            pf = _prefect(env, ep, home / "out", "via-prefect", exps)
            direct = _direct(ep, home / "out", "direct", exps)
    over = pf["wall"] - direct
    note = f"{'+'.join(exps)}, sample studies, shared server; worker poll {poll_s:g}s{caveat}"
    return [
        Row(BENCH, ep.model, "direct (grace.pipeline)", n=trials, wall_s=direct, note="fresh process"),
        Row(BENCH, ep.model, "prefect deployment run", n=trials, wall_s=pf["wall"], ratio=ratio(pf["wall"], direct),
            vs="direct", per_trial=pf["tasks"] / trials,
            note=f"task runs/trial; {pf['flows']} flow runs; submit {pf['submit']:.1f}s, in-flow {pf['in_flow']:.1f}s"),
        Row(BENCH, ep.model, "prefect overhead", n=trials, value=over, ratio=over / pf["wall"], vs="prefect wall",
            note=note),
    ]
