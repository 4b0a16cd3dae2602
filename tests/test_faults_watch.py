"""The server dies, restarts or rejects everything mid-stage (grace.serving.gate): real vLLM servers, real CLI.

- vLLM SIGKILLed mid-Exp 1 under `grace query` (local backend): the command exits within seconds with the
  reason, no row it never had answered is recorded as `error`, no vLLM process (EngineCore included) is left,
  and a rerun completes every row exactly once.
- The server stopped and answering again on the same port 5 s later under `grace query --endpoint` (the
  pod-restart case): the run waits for it and completes, 0 error rows, every row once, exit 0.
- The first requests all rejected with the same HTTP 400 by the real server (`--max-tokens` above the model's
  length): the stage stops after a few with the server's message, the rest unasked; a rerun redoes them.
- Exp 2 and the LLM extraction share the mechanism: a dark server is waited through; Exp 2's trials rejected
  before any answer are recorded `error` (redone), not `rejected` (kept).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from grace.config import Config, ExperimentConfig, Retry
from grace.extract import Reply, extract_rows
from grace.extract.plugin import extraction_of
from grace.query import run_exp1_sync
from grace.scoring import run_exp2_sync
from grace.server_waits import read_waits
from grace.serving import Endpoint, ExternalServer, LocalVLLMServer
from grace.serving.gate import FAIL_FAST_AFTER, RequestsRejected, ServerLost
from grace.serving.local import free_port
from grace.studies.registry import get_study
from tests.conftest import ROOT, vllm_processes
from tests.support.fault_proxy import FaultProxy, Faults

pytestmark = pytest.mark.faults

GRACE = str(ROOT / ".venv" / "bin" / "grace")
CHAT = "/v1/chat/completions"


def jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def rows_in(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def wait_rows(path: Path, n: int, cli: Cli | None = None, timeout: float = 400) -> None:
    deadline = time.monotonic() + timeout
    while rows_in(path) < n:
        assert time.monotonic() < deadline, f"{path}: fewer than {n} rows after {timeout} s"
        assert cli is None or cli.poll() is None, f"the command ended early: {cli.output()}"
        time.sleep(0.05)


def when_rows(path: Path, n: int, action: Callable[[], None]) -> threading.Thread:
    def run() -> None:
        wait_rows(path, n)
        action()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


class Cli:
    """`grace ARGS` as a separate process (the real console script); its output goes to files, not pipes."""

    def __init__(self, tmp: Path, *args: str) -> None:
        self.out, self.err = tmp / f"cli-{time.monotonic_ns()}.out", tmp / f"cli-{time.monotonic_ns()}.err"
        with open(self.out, "w") as o, open(self.err, "w") as e:
            self.proc = subprocess.Popen([GRACE, *args], cwd=ROOT, stdout=o, stderr=e, text=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self, timeout: float) -> tuple[int, str]:
        """(exit code, stderr)."""
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return code, self.err.read_text()

    def output(self) -> str:
        return self.out.read_text() + self.err.read_text()


def exp_settings(cfg: Config, study: str, experiment: str, concurrency: int = 4) -> ExperimentConfig:
    exp = cfg.experiment(study, experiment)
    retry = Retry(attempts=2, backoff_initial_s=0.1, backoff_max_s=0.5, request_timeout_s=60)
    return exp.model_copy(update={"sampling": exp.sampling.model_copy(update={"max_tokens": 8}), "retry": retry,
                                  "concurrency": concurrency, "variants": "main"})  # one record per trial


def test_sigkill_mid_exp1_stops_the_cli_in_seconds_and_a_rerun_resumes(
    toy_server: Endpoint, tmp_path: Path
) -> None:
    n = 400
    out = tmp_path / "run"
    ckpt = out / "toy" / "study2" / "exp1.jsonl"
    before = {p.pid for p in vllm_processes()}
    cli = Cli(tmp_path, "query", "--model", "toy", "--study", "study2", "--limit", str(n), "--max-tokens", "8",
              "--out", str(out))
    wait_rows(ckpt, 60, cli)
    server = next(p for p in psutil.Process(cli.pid).children(recursive=True) if "api_server" in " ".join(p.cmdline()))
    group = [p for p in vllm_processes() if p.pid not in before]
    assert len(group) >= 2, f"the server and its EngineCore: {group}"
    t0 = time.monotonic()
    os.kill(server.pid, signal.SIGKILL)  # the API process only: its EngineCore child is left behind
    code, err = cli.wait(timeout=120)
    exit_s = time.monotonic() - t0
    done = len(jsonl(ckpt))
    assert code == 1, err
    assert f"vLLM exited with signal 9 (SIGKILL) after {done} of {n} rows; a rerun resumes" in err, err
    assert exit_s < 15, f"the command exited {exit_s:.1f} s after the kill"
    assert all(r["status"] != "error" for r in jsonl(ckpt)), "rows never answered must not be recorded as error"
    assert done < n
    left = [p for p in group if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"vLLM processes left after the stop (EngineCore included): {left}"
    assert [w.outcome for w in read_waits(ckpt.parent, "exp1")] == ["lost"]

    with FaultProxy(toy_server.base_url) as proxy:
        code, err2 = Cli(tmp_path, "query", "--model", "toy", "--study", "study2", "--limit", str(n), "--max-tokens",
                         "8", "--out", str(out), "--endpoint", proxy.url).wait(timeout=600)
        asked = proxy.forwarded[CHAT]
    assert code == 0, err2
    rows = jsonl(ckpt)
    keys = Counter(f"{r['trial_id']}#{r['replicate']}" for r in rows)
    assert len(keys) == n and set(keys.values()) == {1}, "every row exactly once over both runs"
    assert asked == n - done, f"the rerun asked {asked}, expected the {n - done} rows not done"
    print(f"FAULTS-TABLE | vLLM SIGKILLed mid-Exp 1 under `grace query` (stopped {exit_s:.1f} s after the kill, "
          f"{done} rows done), rerun | 2 | {n} | {len(keys)} | 0 | {len(left)}")


@pytest.mark.server  # the first server is the test's own: it is stopped under the running stage
def test_server_restarted_on_the_same_port_is_waited_through(cfg: Config, toy_server: Endpoint,
                                                             tmp_path: Path) -> None:
    """A real vLLM server stopped under the stage (its requests in flight cut off); a server answering again on
    the same port 5 s later: the session's toy server behind a proxy that listens there (the same model, so
    the run cannot tell; a second vLLM start would only add its start-up time to the wait)."""
    n, gap_s = 120, 5  # 30 rows before the stop, 90 left to ask where the server comes back (300 took 78 s)
    port = free_port()
    out = tmp_path / "run"
    ckpt = out / "toy" / "study2" / "exp1.jsonl"
    first = LocalVLLMServer(cfg.model("toy"), port=port, run_id="pytest-restart")
    marks: dict[str, float] = {}
    try:
        first.start()
        cli = Cli(tmp_path, "query", "--model", "toy", "--study", "study2", "--limit", str(n), "--max-tokens", "8",
                  "--concurrency", "4", "--out", str(out), "--endpoint", first.endpoint.base_url)
        wait_rows(ckpt, 30, cli)
        first.stop()
        marks["stopped"] = time.monotonic()
        time.sleep(gap_s)
        assert cli.poll() is None, f"the run must wait for the server, it ended: {cli.output()}"
        with FaultProxy(toy_server.base_url, port=port) as back:
            marks["ready"] = time.monotonic()
            code, err = cli.wait(timeout=600)
        asked_after = back.forwarded[CHAT]
    finally:
        first.stop()
    assert code == 0, err
    rows = jsonl(ckpt)
    keys = Counter(f"{r['trial_id']}#{r['replicate']}" for r in rows)
    assert all(r["status"] != "error" for r in rows), [r["error"] for r in rows if r["status"] == "error"]
    assert len(keys) == n and set(keys.values()) == {1}, "every row exactly once"
    assert 0 < asked_after < n, "the rows left were asked where the server came back"
    waits = read_waits(ckpt.parent, "exp1")
    assert [w.outcome for w in waits] == ["back"], waits
    assert waits[0].waited_s >= gap_s
    assert f"note: waited {waits[0].waited_s:.0f} s for the server (1 time(s))" in cli.out.read_text()
    print(f"FAULTS-TABLE | server stopped, answering again on the same port {gap_s} s later, under `grace query "
          f"--endpoint` (waited {waits[0].waited_s:.0f} s; back {marks['ready'] - marks['stopped']:.0f} s "
          f"after the stop) | 1 | {n} | {len(keys)} | 0 | 0")


def test_first_requests_rejected_alike_stop_the_stage_and_a_rerun_redoes_them(
    toy_server: Endpoint, tmp_path: Path
) -> None:
    """The real server answers 400 to every request (max_tokens above the model's max_model_len)."""
    n = 200
    out = tmp_path / "run"
    ckpt = out / "toy" / "study2" / "exp1.jsonl"
    args = ["query", "--model", "toy", "--study", "study2", "--limit", str(n), "--out", str(out)]
    with FaultProxy(toy_server.base_url) as proxy:
        code, err = Cli(tmp_path, *args, "--max-tokens", "4000", "--endpoint", proxy.url).wait(timeout=300)
        sent = proxy.forwarded[CHAT]
        assert code == 1, err
        assert (f"the server rejected each of the first {FAIL_FAST_AFTER} requests with HTTP 400: max_tokens=4000 "
                "cannot be greater than max_model_len=2048") in err, err
        assert sent == FAIL_FAST_AFTER, f"{sent} requests sent: only the first few may be"
        first = jsonl(ckpt)
        assert len(first) == FAIL_FAST_AFTER - 1 and all(r["status"] == "error" for r in first)
        assert [w.outcome for w in read_waits(ckpt.parent, "exp1")] == ["rejected"]

        code, err2 = Cli(tmp_path, *args, "--max-tokens", "8", "--endpoint", proxy.url).wait(timeout=600)
        asked = proxy.forwarded[CHAT] - sent
    assert code == 0, err2
    assert asked == n, "the rerun asks every row: the rejected ones (status error) too"
    final = {}
    for r in jsonl(ckpt):
        final[(r["trial_id"], r["replicate"])] = r
    assert len(final) == n and all(r["status"] != "error" for r in final.values())
    print(f"FAULTS-TABLE | every request rejected alike (HTTP 400), then rerun | 2 | {n} | {len(final)} | 0 | 0   "
          f"(stopped after {sent} requests, {n - sent} never sent)")


def test_exp2_waits_through_a_dark_server_and_redoes_stage_wide_rejections(
    cfg: Config, toy_server: Endpoint, tmp_path: Path
) -> None:
    study = get_study("study2")
    trials = study.load(cfg.study_file("study2", sample=False), limit=24)
    # each trial's utterances in its counterbalanced order, not under their 8 rotations: the waits are under test,
    # not the layout (tests/test_scoring_server.py scores the rotations); 8 x the prompts took 37 s of the toy lane
    exp = exp_settings(cfg, "study2", "exp2").model_copy(update={"rotations_up_to": 0})
    with FaultProxy(toy_server.base_url) as proxy:
        ep = ExternalServer(proxy.url, "toy").endpoint
        dark = tmp_path / "dark"

        def outage() -> None:
            proxy.set(Faults(mode="down"))
            time.sleep(3)
            proxy.set(Faults())

        t = when_rows(dark / "exp2.jsonl", 4, outage)
        res = run_exp2_sync(ep, study, trials, exp, dark)
        t.join(timeout=10)
        assert proxy.injected["down"] > 0
        assert res.failed == 0 and res.ok == len(trials), (res.ok, res.other)
        assert [w["outcome"] for w in res.waits] == ["back"] and res.waits[0]["waited_s"] >= 2

        rejected = tmp_path / "rejected"
        proxy.set(Faults(mode="400", paths=("/v1/completions",), message="prompt shape not supported"))
        with pytest.raises(RequestsRejected, match="HTTP 400: prompt shape not supported; stopped with 0 of 24"):
            run_exp2_sync(ep, study, trials, exp, rejected)
        first = jsonl(rejected / "exp2.jsonl")
        assert first and all(r["status"] == "error" for r in first), [r["status"] for r in first]
        proxy.set(Faults())
        again = run_exp2_sync(ep, study, trials, exp, rejected)
    assert again.ok == len(trials) and again.skipped == 0, "the rejected trials are redone"


def test_extraction_waits_through_a_dark_server(cfg: Config, toy_server: Endpoint) -> None:
    replies = [Reply(f"I would say something kind, number {i}.") for i in range(12)]
    with FaultProxy(toy_server.base_url) as proxy:
        ep = ExternalServer(proxy.url, "toy").endpoint
        marks: dict[str, float] = {}

        def outage() -> None:
            deadline = time.monotonic() + 60
            while proxy.forwarded[CHAT + "#structured"] < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            proxy.set(Faults(mode="down"))
            marks["down"] = time.monotonic()
            time.sleep(3)
            proxy.set(Faults())

        t = threading.Thread(target=outage, daemon=True)
        t.start()
        out, summary = extract_rows(extraction_of(get_study("study2")), replies, ep, concurrency=2, max_tokens=24,
                                    retry=Retry(attempts=2, backoff_initial_s=0.1, backoff_max_s=0.5))
        t.join(timeout=10)
    assert marks and proxy.injected["down"] > 0
    assert summary.llm_requests == len(replies) and summary.llm_errors == 0
    assert [w["outcome"] for w in summary.waits] == ["back"]


def test_server_not_back_in_time_stops_the_stage(cfg: Config, toy_server: Endpoint, tmp_path: Path) -> None:
    study = get_study("study2")
    trials = study.load(cfg.study_file("study2", sample=False), limit=60)
    with FaultProxy(toy_server.base_url) as proxy:
        ep = ExternalServer(proxy.url, "toy", restart_timeout_s=3).endpoint
        when_rows(tmp_path / "exp1.jsonl", 5, lambda: proxy.set(Faults(mode="down")))
        t0 = time.monotonic()
        with pytest.raises(ServerLost, match=r"the server did not come back within 3 s .* after \d+ of 60 rows"):
            run_exp1_sync(ep, study, trials, exp_settings(cfg, "study2", "exp1"), tmp_path)
        assert time.monotonic() - t0 < 60
    rows = jsonl(tmp_path / "exp1.jsonl")
    assert rows and all(r["status"] != "error" for r in rows) and len(rows) < len(trials)
