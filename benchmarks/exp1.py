"""Exp 1 throughput: sequential loop vs Grace's engine (default + sweep) vs the server's limit.

The server's limit is a bare saturating client that puts every request in flight at once (what `vllm bench
serve --request-rate inf` does) on the same server, prompts and sampling parameters. Grace's default and the
saturating client run alternately, `rounds` times each, and the medians are compared: on a 2-core machine
run-to-run noise is about 15%. vLLM's offline batch generation (`vllm_offline.py`, the engine without the
HTTP server, run before the server starts so nothing shares the CPU) is reported beside it: on 2 cores the
HTTP front-end process competes with the engine for the CPU, so offline is an upper bound no client of the
server can reach there.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import Row, cpu_s, log, median_row, percentile, ratio
from grace.checkpoint import Checkpoint
from grace.config import Config, ExperimentConfig
from grace.paths import project_root, vllm_python
from grace.query import run_exp1
from grace.records import Exp1Record
from grace.serving import Endpoint, LocalVLLMServer, in_flight
from grace.studies import Study, Trial
from grace.studies.registry import get_study

BENCH = "exp1"


@dataclass(frozen=True)
class Exp1Setup:
    model: str
    study: Study
    trials: list[Trial]
    exp: ExperimentConfig

    @property
    def conversations(self) -> list[list[dict[str, str]]]:
        return [self.study.exp1_messages(t) for t in self.trials]

    @property
    def payload(self) -> dict[str, Any]:
        s = self.exp.sampling
        return {"temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens}


def setup(cfg: Config, model: str, n: int, max_tokens: int | None, study: str = "study2") -> Exp1Setup:
    """The first `n` trials of `study` with its Exp 1 sampling parameters (`max_tokens` None: the study's)."""
    st = get_study(study)
    trials = st.load(cfg.study_file(study, sample=False), limit=n)
    exp = cfg.experiment(study, "exp1")
    update: dict[str, Any] = {"replications": 1} | ({"max_tokens": max_tokens} if max_tokens else {})
    exp = exp.model_copy(update={"sampling": exp.sampling.model_copy(update=update)})
    return Exp1Setup(model, st, trials, exp)


def _row(s: Exp1Setup, contender: str, wall: float, n: int, tokens: int, lat: list[float], note: str = "") -> Row:
    return Row(BENCH, s.model, contender, n=n, wall_s=wall, rps=n / wall, tok_s=tokens / wall,
               p50_s=percentile(lat, 50), p99_s=percentile(lat, 99), note=note)


def offline_limit(cfg: Config, s: Exp1Setup, timeout_s: float = 600) -> Row:
    """vLLM.LLM.chat on the same conversations, engine configured as Grace configures the server."""
    mc = cfg.model(s.model)
    prof = mc.profile("local")
    srv = LocalVLLMServer(mc, run_id="bench-offline")
    engine = {"model": srv.weights, "served_model_name": mc.name, "dtype": prof.dtype,
              "max_model_len": prof.max_model_len, "seed": s.exp.sampling.seed, "enforce_eager": True,
              "distributed_executor_backend": "uni", "enable_prefix_caching": True, "max_logprobs": 20}
    with tempfile.TemporaryDirectory(prefix="grace-bench-") as d:
        spec, out = Path(d) / "spec.json", Path(d) / "out.json"
        spec.write_text(json.dumps({"engine": engine, "sampling": s.payload, "conversations": s.conversations}))
        script = project_root() / "benchmarks" / "vllm_offline.py"
        proc = subprocess.run([str(vllm_python()), str(script), str(spec), str(out)], env=srv._env(),
                              cwd=d, capture_output=True, text=True, timeout=timeout_s)
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout)[-800:]
            raise RuntimeError(f"offline vLLM failed (exit {proc.returncode}): {tail}")
        r = json.loads(out.read_text())
    return Row(BENCH, s.model, "limit: vllm.LLM offline", n=r["n"], wall_s=r["wall_s"], rps=r["n"] / r["wall_s"],
               tok_s=r["output_tokens"] / r["wall_s"], note=f"load {r['load_s']:.0f}s excluded")


def sequential(ep: Endpoint, s: Exp1Setup, n: int) -> Row:
    """The seeds' approach: one request at a time, waiting for each answer."""
    lat: list[float] = []
    tokens = 0
    with httpx.Client(timeout=600) as client:
        t0 = time.perf_counter()
        for msgs in s.conversations[:n]:
            t = time.perf_counter()
            r = client.post(f"{ep.v1}/chat/completions", json={"model": ep.model, "messages": msgs, **s.payload})
            r.raise_for_status()
            lat.append(time.perf_counter() - t)
            tokens += r.json()["usage"]["completion_tokens"]
        wall = time.perf_counter() - t0
    return _row(s, "sequential loop", wall, len(lat), tokens, lat)


async def _saturate(ep: Endpoint, s: Exp1Setup) -> tuple[float, int, list[float]]:
    convs = s.conversations
    limits = httpx.Limits(max_connections=len(convs), max_keepalive_connections=len(convs))
    async with httpx.AsyncClient(limits=limits, timeout=600) as client:

        async def one(msgs: list[dict[str, str]]) -> tuple[float, int]:
            t = time.perf_counter()
            r = await client.post(f"{ep.v1}/chat/completions", json={"model": ep.model, "messages": msgs, **s.payload})
            r.raise_for_status()
            return time.perf_counter() - t, int(r.json()["usage"]["completion_tokens"])

        t0 = time.perf_counter()
        got = await asyncio.gather(*(one(m) for m in convs))
        wall = time.perf_counter() - t0
    return wall, sum(n for _, n in got), [lat for lat, _ in got]


def saturating(ep: Endpoint, s: Exp1Setup) -> Row:
    c0 = cpu_s()
    wall, tokens, lat = asyncio.run(_saturate(ep, s))
    return _row(s, f"limit: saturating client c={len(lat)}", wall, len(lat), tokens, lat,
                note=f"client CPU {1000 * (cpu_s() - c0) / len(lat):.1f} ms/req")


def grace_engine(ep: Endpoint, s: Exp1Setup, concurrency: int | None) -> Row:
    """grace.query.run_exp1 end to end (checkpoint and tidy table included) into a fresh folder."""
    with tempfile.TemporaryDirectory(prefix="grace-bench-") as d:
        t0, c0 = time.perf_counter(), cpu_s()
        res = asyncio.run(run_exp1(ep, s.study, s.trials, s.exp, Path(d), concurrency=concurrency))
        wall, cpu = time.perf_counter() - t0, cpu_s() - c0
        recs = list(Checkpoint(Path(d) / "exp1.jsonl", Exp1Record).load().values())
    bad = res.failed + sum(v for k, v in res.other.items() if k not in ("truncated",))
    tokens = sum(r.completion_tokens or 0 for r in recs)
    label = f"grace c={res.concurrency}" + (" (default)" if concurrency is None else "")
    notes = [f"client CPU {1000 * cpu / max(1, len(recs)):.1f} ms/req"] + ([f"{bad} not ok"] if bad else [])
    return _row(s, label, wall, len(recs), tokens, [r.latency_s or 0.0 for r in recs], note="; ".join(notes))


def _median(rows: list[Row], label: str) -> Row:
    return median_row(rows, "tok_s", "out tok/s", label=label)


def run(ep: Endpoint, s: Exp1Setup, *, sweep: list[int], seq_n: int, offline: Row | None,
        rounds: int = 2) -> list[Row]:
    """All contenders on one server, back to back; ratios against the server's limit and the sequential loop."""
    # Warm-up: every prompt once with max_tokens 1, so each contender finds the same warm prefix cache (else
    # whichever runs later gets its prompts' prefill for free). vllm_offline.py does the same.
    one = s.exp.model_copy(update={"sampling": s.exp.sampling.model_copy(update={"max_tokens": 1})})
    grace_engine(ep, replace(s, exp=one), None)
    log(f"exp1 {s.model}: sequential loop, {seq_n} requests (max_tokens {s.exp.sampling.max_tokens})")
    seq = sequential(ep, s, seq_n)
    log(f"exp1 {s.model}: grace default and a saturating client ({len(s.trials)} in flight), alternately x{rounds}")
    graces, limits = [], []
    for _ in range(rounds):
        graces.append(grace_engine(ep, s, None))
        limits.append(saturating(ep, s))
    default = _median(graces, graces[0].contender)
    limit = _median(limits, f"limit: saturating client c={len(s.trials)}")
    log(f"exp1 {s.model}: grace sweep {sweep}")
    swept = [grace_engine(ep, s, c) for c in sweep if c != in_flight(ep, s.exp.concurrency)]
    rows = [seq, default, *swept, limit]
    for r in (seq, default, *swept):
        r.ratio, r.vs = ratio(r.tok_s, limit.tok_s), "server limit"
    if offline:
        rows.append(offline)
        rows.append(Row(BENCH, s.model, "grace default / offline engine", ratio=ratio(default.tok_s, offline.tok_s),
                        vs="vllm.LLM offline", note="output tokens/s; no HTTP front-end (reference, no target)"))
    rows.append(Row(BENCH, s.model, "grace default / sequential", ratio=ratio(default.tok_s, seq.tok_s),
                    vs="sequential", note="output tokens/s"))
    return rows
