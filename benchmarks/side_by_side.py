"""Local vLLM CPU servers answering alone and two at once, with OpenMP threads as many as the cores (what the
engine takes here when nothing is set) and with one thread each.

The question it answers: how the test suite should run its servers. `scripts/test.sh` runs two lanes at once on
two cores, each with servers of its own, and an engine's OpenMP workers spin while they wait for each other: two
engines of two threads each on two cores mostly wait for a worker the other engine has descheduled. Each
contender answers the same Exp 1 trials (study 2, 4 tokens, 32 in flight; fresh servers, so nothing is cached
from a previous run). `value` is the servers' CPU seconds (API server and engine together, summed over the
servers), `wall_s` the slowest server's wall time. Measured (`python -m benchmarks --models toy --only
side-by-side`, 2 cores, 800 trials per server, medians of 2): two at once, 26.8 s and 48.5 CPU-s with two threads
each, 12.9 s and 18.9 CPU-s with one (2.08 x the trials/s); alone, 5.1 s with two and 5.6 s with one (0.91 x). A
larger model alone needs its threads (SmolLM2, `grace score` of the study 2 sample: 61 s with two, 92 s with one),
so the product keeps vLLM's default and only the test suite sets one (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import psutil

from benchmarks.common import Row, alternate
from grace.config import Config
from grace.query import run_exp1
from grace.serving.local import LocalVLLMServer
from grace.studies.registry import get_study

BENCH = "side-by-side"
CORES = os.cpu_count() or 1


def _cpu_s(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:  # gone: its last figures are lost, which only undercounts
            continue
    return total


def _serve(cfg: Config, model: str, threads: int, n: int, ready: threading.Barrier,
           out: list[tuple[float, float, int]]) -> None:
    study = get_study("study2")
    trials = study.load(cfg.study_file("study2", sample=False), limit=n)
    exp = cfg.experiment("study2", "exp1")
    exp = exp.model_copy(update={"sampling": exp.sampling.model_copy(update={"max_tokens": 4})})
    server = LocalVLLMServer(cfg.model(model), run_id=f"bench-threads-{threads}",
                             extra_env={"OMP_NUM_THREADS": str(threads)})
    with server as ep, tempfile.TemporaryDirectory(prefix="grace-bench-") as d:
        assert server.proc is not None
        root = psutil.Process(server.proc.pid)
        procs = [root, *root.children(recursive=True)]
        ready.wait()  # every server is up: they answer at the same time
        c0, t0 = _cpu_s(procs), time.perf_counter()
        res = asyncio.run(run_exp1(ep, study, trials, exp, Path(d), concurrency=32))
        out.append((time.perf_counter() - t0, _cpu_s(procs) - c0, res.failed))


def _one(cfg: Config, model: str, servers: int, threads: int, n: int) -> Row:
    ready = threading.Barrier(servers, timeout=600)
    out: list[tuple[float, float, int]] = []
    workers = [threading.Thread(target=_serve, args=(cfg, model, threads, n, ready, out)) for _ in range(servers)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if len(out) != servers:
        raise RuntimeError(f"{servers - len(out)} of {servers} servers did not finish (see the log above)")
    wall = max(w for w, _, _ in out)
    failed = sum(f for _, _, f in out)
    what = f"{'alone' if servers == 1 else f'{servers} at once'}, {threads} thread{'s' if threads > 1 else ''}"
    return Row(BENCH, model, what + (" (cores: vLLM's default here)" if threads == CORES else ""), n=n * servers,
               wall_s=wall, rps=n * servers / wall, value=sum(c for _, c, _ in out),
               note=f"{servers} server(s) x {n} trials; value: server CPU-s" + (f"; {failed} failed" if failed else ""))


def run(cfg: Config, model: str, *, n: int, rounds: int = 2) -> list[Row]:
    if CORES < 2:
        return [Row(BENCH, model, "not run", note="one core: one thread is what vLLM takes anyway")]
    rows: list[Row] = []
    for servers in (1, 2):
        rows += alternate(CORES, 1, partial(_one, cfg, model, servers, n=n), rounds)  # one(threads)
    return rows
