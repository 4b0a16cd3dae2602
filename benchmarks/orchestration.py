"""Orchestration overhead: `prefect deployment run grace/full-study` (real Prefect server + process worker)
vs the same work through grace.pipeline in a fresh process (benchmarks/direct_run.py).

Both use the same already-running vLLM server (the flow's `endpoint` parameter), so the difference is
Prefect alone: CLI submission, worker pick-up (the worker's poll interval, `worker.query_seconds` in
prefect.toml), the flow-run process, flow/task-run bookkeeping and artifacts. A warm-up direct run goes first
so both measured runs find the server equally warm.

Two pairs: the sample study (what the issue names; Prefect's cost is mostly fixed, so its share of a 20-trial
run is large) and the full study (2,724 trials, Exp 1 with short answers and rules-only extraction: the
shortest full-study run, so its share is an upper bound for a real one, which also runs Exp 2 and the LLM
extraction). Each Prefect run is broken down from its state history: submit (the CLI), queue (Scheduled ->
Pending: the worker's poll), start (Pending -> Running: process start, imports, flow load), flow (Running ->
final state).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from benchmarks.common import Row, log, ratio
from grace.paths import project_root
from grace.serving import Endpoint
from grace.serving.local import free_port, kill_group

BENCH = "prefect"
ROOT = project_root()
PREFECT = str(ROOT / ".venv" / "bin" / "prefect")


def shipped_poll_s() -> float:
    """The worker poll interval Grace ships (prefect.toml), which this benchmark's worker uses too."""
    settings = tomllib.loads((ROOT / "prefect.toml").read_text())
    return float(settings.get("worker", {}).get("query_seconds", 10))


@dataclass(frozen=True)
class Workload:
    """One pair's work, as flow parameters and as the direct runner's flags."""

    label: str
    experiments: tuple[str, ...]
    sample: bool = True
    max_tokens: int | None = None
    extract_llm: bool | None = None
    concurrency: int | None = None

    def params(self) -> dict[str, Any]:
        # no preflight: the direct runner has none, and the pair must do the same work
        p: dict[str, Any] = {"experiments": list(self.experiments), "sample": self.sample, "preflight": False}
        if self.max_tokens is not None:
            p["max_tokens"] = self.max_tokens
        if self.extract_llm is not None:
            p["extract_llm"] = self.extract_llm
        if self.concurrency is not None:
            p["concurrency"] = self.concurrency
        return p

    def flags(self) -> list[str]:
        f = ["--experiments", *self.experiments]
        if not self.sample:
            f.append("--full")
        if self.max_tokens is not None:
            f += ["--max-tokens", str(self.max_tokens)]
        if self.extract_llm is False:
            f.append("--no-extract-llm")
        if self.concurrency is not None:
            f += ["--concurrency", str(self.concurrency)]
        return f


SAMPLE = Workload("sample study, exp1+exp2", ("exp1", "exp2"))
# Concurrency 32: with 4-token answers the work is prefill-bound and 32 in flight is about twice as fast as the
# default 128 on this CPU (measured), so the run is as short as it gets and the overhead share an upper bound.
FULL = Workload("full study, exp1 (max_tokens 4, concurrency 32, rules-only extraction)", ("exp1",), sample=False,
                max_tokens=4, extract_llm=False, concurrency=32)


@contextlib.contextmanager
def prefect_stack(home: Path) -> Iterator[dict[str, str]]:
    """A Prefect server with its own SQLite home, grace/full-study deployed, one process worker."""
    url = f"http://127.0.0.1:{free_port()}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": url,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
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
            if p.poll() is None:
                kill_group(p.pid, grace_s=20)


class DirectRunFailed(RuntimeError):
    """The direct run (grace.pipeline) failed: its last stderr line."""


def _direct(ep: Endpoint, out: Path, run_id: str, work: Workload) -> dict[str, float]:
    t0 = time.perf_counter()
    got = subprocess.run([sys.executable, "-m", "benchmarks.direct_run", "--out", str(out), "--run-id", run_id,
                          "--endpoint", ep.base_url, "--models", ep.model, *work.flags()],
                         cwd=ROOT, capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    if got.returncode != 0:
        raise DirectRunFailed(got.stderr.strip().splitlines()[-1] if got.stderr.strip() else f"exit {got.returncode}")
    out_line = json.loads(got.stdout.strip().splitlines()[-1])
    return {"wall": wall, "work": float(out_line["work_s"]), "trials": float(out_line["trials"])}


@dataclass
class PrefectTimes:
    """One deployment run: seconds (None where Prefect did not record the state change) and run counts."""

    wall: float
    submit: float
    queue: float | None
    start: float | None
    in_flow: float | None
    tasks: int
    flows: int


def _prefect(env: dict[str, str], ep: Endpoint, out: Path, run_id: str, work: Workload) -> PrefectTimes:
    from prefect.client.orchestration import SyncPrefectClient

    params = {"models": [ep.model], "out": str(out), "run_id": run_id, "endpoint": ep.base_url, **work.params()}
    cmd = [PREFECT, "--no-prompt", "deployment", "run", "grace/full-study"]
    for k, v in params.items():
        cmd += ["--param", f"{k}={json.dumps(v) if not isinstance(v, str) else v}"]
    with SyncPrefectClient(env["PREFECT_API_URL"]) as client:
        seen_tasks = {t.id for t in client.read_task_runs()}
        seen_flows = {f.id for f in client.read_flow_runs()}
    t0 = time.perf_counter()
    got = subprocess.run(cmd, env=env, cwd=ROOT, check=True, capture_output=True, text=True, timeout=120)
    submitted = time.perf_counter() - t0
    fid = UUID(next(w for line in got.stdout.splitlines() if "UUID" in line for w in line.split() if len(w) == 36))
    with SyncPrefectClient(env["PREFECT_API_URL"]) as client:
        while True:
            run = client.read_flow_run(fid)
            if run.state and run.state.is_final():
                break
            if time.perf_counter() - t0 > 900:
                raise RuntimeError("Prefect run did not finish in 900 s")
            time.sleep(0.25)
        wall = time.perf_counter() - t0
        if not run.state.is_completed():
            raise RuntimeError(f"Prefect run ended {run.state.name}: {run.state.message}")
        states = client.read_flow_run_states(fid)
        tasks = [t for t in client.read_task_runs() if t.id not in seen_tasks]
        flows = [f for f in client.read_flow_runs() if f.id not in seen_flows]
    at: dict[str, datetime] = {}
    for s in sorted(states, key=lambda s: s.timestamp):
        at.setdefault(s.type.value, s.timestamp)
    queue = (at["PENDING"] - at["SCHEDULED"]).total_seconds() if "PENDING" in at and "SCHEDULED" in at else None
    start = (at["RUNNING"] - at["PENDING"]).total_seconds() if "RUNNING" in at and "PENDING" in at else None
    in_flow = (run.end_time - run.start_time).total_seconds() if run.start_time and run.end_time else None
    return PrefectTimes(wall=wall, submit=submitted, queue=queue, start=start, in_flow=in_flow, tasks=len(tasks),
                        flows=len(flows))


def _s(v: float | None) -> str:
    return "?" if v is None else f"{v:.1f}s"


def _pair_rows(ep: Endpoint, work: Workload, direct: dict[str, float], pf: PrefectTimes,
               poll_s: float) -> list[Row]:
    n = int(direct["trials"])
    over = pf.wall - direct["wall"]
    return [
        Row(BENCH, ep.model, f"direct: {work.label}", n=n, wall_s=direct["wall"],
            note=f"fresh process; imports {direct['wall'] - direct['work']:.1f}s, work {direct['work']:.1f}s"),
        Row(BENCH, ep.model, f"prefect deployment run: {work.label}", n=n, wall_s=pf.wall,
            ratio=ratio(pf.wall, direct["wall"]), vs="direct", per_trial=pf.tasks / n,
            note=f"task runs/trial ({pf.tasks} task runs, {pf.flows} flow runs); submit {_s(pf.submit)}, "
                 f"queue {_s(pf.queue)} (poll {poll_s:g}s), start {_s(pf.start)}, flow {_s(pf.in_flow)}"),
        Row(BENCH, ep.model, f"prefect overhead: {work.label}", n=n, value=over, ratio=over / pf.wall,
            vs="prefect wall", note="seconds; ratio = share of the Prefect run's wall time"),
    ]


def _warm_full(ep: Endpoint, studies: tuple[str, ...]) -> None:
    """Every full-study Exp 1 prompt once with max_tokens 1, so the Prefect run (first) and the direct run
    (second) find the server's prefix cache in the same state."""
    import asyncio

    from grace.config import load_config
    from grace.query import run_exp1
    from grace.studies.registry import get_study

    cfg = load_config()
    log(f"prefect: warming the prefix cache with every {'+'.join(studies)} prompt (max_tokens 1)")
    for name in studies:
        study, exp = get_study(name), cfg.experiment(name, "exp1")
        exp = exp.model_copy(update={"sampling": exp.sampling.model_copy(update={"max_tokens": 1})})
        with tempfile.TemporaryDirectory(prefix="grace-bench-warm-") as d:
            asyncio.run(run_exp1(ep, study, study.load(cfg.study_file(name, sample=False)), exp, Path(d)))


def run(ep: Endpoint, *, full: bool = True, warm: tuple[str, ...] = ("study1", "study2")) -> list[Row]:
    """The sample pair always; the full-study pair when `full` (about 3 minutes more on toy), after a pass over
    the `warm` studies' prompts (the runner leaves out study2 when the memory benchmark has just done it)."""
    poll_s = shipped_poll_s()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="grace-bench-prefect-") as d:
        home = Path(d)
        log("prefect: warm-up direct run (exp1+exp2 on the two samples)")
        _direct(ep, home / "out", "warm", SAMPLE)
        log("prefect: starting a Prefect server, deploying grace/full-study, starting a worker")
        with prefect_stack(home) as env:
            for work in (SAMPLE, FULL) if full else (SAMPLE,):
                if work is FULL and warm:
                    _warm_full(ep, warm)
                log(f"prefect: {work.label}: deployment run, then the same work directly")
                pf = _prefect(env, ep, home / "out", f"prefect-{len(rows)}", work)
                direct = _direct(ep, home / "out", f"direct-{len(rows)}", work)
                rows += _pair_rows(ep, work, direct, pf, poll_s)
    return rows
