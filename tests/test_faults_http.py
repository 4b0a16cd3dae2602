"""HTTP faults between Grace and the real vLLM server: 503, 429, slow beyond the timeout, dropped connections.

A fault proxy on 127.0.0.1 sits in front of the session's toy vLLM server. Expected: retries with backoff,
every trial present exactly once, the attempts recorded per row add up to the requests the proxy received.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import pandas as pd
import pytest

from grace.config import Config, ExperimentConfig, Retry
from grace.query import run_exp1_sync
from grace.serving import Endpoint, ManagedServer
from grace.studies.registry import get_study
from tests.conftest import vllm_processes
from tests.support.fault_proxy import FaultProxy, Faults

pytestmark = pytest.mark.faults

CHAT = "/v1/chat/completions"


def exp_with(cfg: Config, retry: Retry, max_tokens: int = 8) -> ExperimentConfig:
    exp = cfg.experiment("study2", "exp1")
    return exp.model_copy(update={"sampling": exp.sampling.model_copy(update={"max_tokens": max_tokens}),
                                  "retry": retry, "concurrency": 4})


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def table_line(fault: str, runs: int, expected: int, rows: list[dict], leaked: int) -> None:
    keys = Counter(f"{r['trial_id']}#{r['replicate']}" for r in rows)
    dups = sum(n - 1 for n in keys.values())
    print(f"FAULTS-TABLE | {fault} | {runs} | {expected} | {len(keys)} | {dups} | {leaked}")


@pytest.mark.parametrize("mode, share, timeout_s", [
    ("503", 0.5, 60.0),
    ("429", 0.5, 60.0),
    ("slow", 0.3, 5.0),
    ("drop", 0.4, 60.0),
    ("mixed", 0.5, 5.0),
])
def test_faults_are_retried_and_nothing_is_lost(
    cfg: Config, toy_server: Endpoint, tmp_path: Path, mode: str, share: float, timeout_s: float
) -> None:
    study = get_study("study2")
    trials = study.load(cfg.study_file("study2", sample=True))
    retry = Retry(attempts=10, backoff_initial_s=0.05, backoff_max_s=0.3, request_timeout_s=timeout_s)
    before = {p.pid for p in vllm_processes()}
    with FaultProxy(toy_server.base_url, Faults(mode=mode, share=share, slow_s=timeout_s + 2, seed=7)) as proxy:
        ep = Endpoint(proxy.url, toy_server.model, toy_server.revision)
        res = run_exp1_sync(ep, study, trials, exp_with(cfg, retry), tmp_path)
    rows = lines(tmp_path / "exp1.jsonl")
    table = pd.read_parquet(tmp_path / "exp1.parquet")
    table_line(f"HTTP {mode} ({share:.0%} of requests)", 1, len(trials), rows,
               len({p.pid for p in vllm_processes()} - before))

    assert sum(proxy.injected.values()) > 0, "the proxy must actually have injected faults"
    assert res.failed == 0, [(r["error"], r["attempts"], r["latency_s"]) for r in rows if r["status"] == "error"]
    assert len(rows) == len(trials), "one checkpoint line per trial: no loss, no duplicate"
    assert sorted(r["trial_id"] for r in rows) == sorted(t["trial_id"] for t in trials)
    assert sorted(table["trial_id"]) == sorted(t["trial_id"] for t in trials)
    assert sum(r["attempts"] for r in rows) == proxy.counts[CHAT], "attempts per row must add up to requests"
    assert any(r["attempts"] > 1 for r in rows), "some rows must record a retry"
    assert res.sent == proxy.counts[CHAT]


def test_exhausted_retries_are_recorded_then_redone_once(cfg: Config, toy_server: Endpoint, tmp_path: Path) -> None:
    """Rows that fail for good are recorded as status error with their attempts; a resume redoes only those."""
    study = get_study("study2")
    trials = study.load(cfg.study_file("study2", sample=True))
    retry = Retry(attempts=3, backoff_initial_s=0.05, backoff_max_s=0.1, request_timeout_s=60)
    exp = exp_with(cfg, retry).model_copy(update={"concurrency": 1})
    with FaultProxy(toy_server.base_url, Faults(mode="503", pass_first=4, paths=(CHAT,))) as proxy:
        ep = Endpoint(proxy.url, toy_server.model, toy_server.revision)
        first = run_exp1_sync(ep, study, trials, exp, tmp_path)
        rows = lines(tmp_path / "exp1.jsonl")
        assert first.failed == 6 and len(rows) == 10, "4 answered (ok or truncated), 6 failed for good"
        errors = [r for r in rows if r["status"] == "error"]
        assert all(r["attempts"] == 3 and "HTTP 503" in r["error"] for r in errors)

        proxy.set(Faults(mode="pass"))
        before = proxy.forwarded[CHAT]
        second = run_exp1_sync(ep, study, trials, exp, tmp_path)
        asked = proxy.forwarded[CHAT] - before
    assert asked == 6 and second.skipped == 4 and second.failed == 0
    table = pd.read_parquet(tmp_path / "exp1.parquet")
    assert sorted(table["trial_id"]) == sorted(t["trial_id"] for t in trials), "one table row per trial"
    assert (table["status"] != "error").all()
    table_line("HTTP 503 until retries exhausted, then resume", 2, len(trials),
               table.to_dict("records"), 0)


def test_ensure_alive_probes_a_failing_server_once(toy_server: Endpoint) -> None:
    """A server whose one-token completion fails is probed once, then restarted (a hung one: one timeout)."""
    with FaultProxy(toy_server.base_url, Faults(mode="503", paths=("/v1/completions",))) as proxy:
        ep = dataclasses.replace(toy_server, base_url=proxy.url)
        started: list[Endpoint] = []

        def factory() -> AbstractContextManager[Endpoint]:
            started.append(ep)
            return nullcontext(ep)

        with ManagedServer(factory) as server:
            assert server.ensure_alive() is ep and server.restarts == 1
        assert len(started) == 2, "started, then restarted once"
        assert proxy.counts["/v1/models"] == 1 and proxy.counts["/v1/completions"] == 1, proxy.counts

