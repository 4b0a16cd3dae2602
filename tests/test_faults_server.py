"""Server faults through the real flow `grace` (in-process, real Prefect server, real local vLLM servers).

- The vLLM server is SIGKILLed mid-Experiment 1: the stage notices at the first failed connection and stops
  (ServerLost; the rows in flight get no record), Prefect's task retry calls ManagedServer.ensure_alive, which
  restarts the server; the run completes with exactly one response per trial.
- The server goes dark for a few seconds mid-Experiment 1 (external endpoint): the stage waits it through in
  the same task run; the stage summary and the report say how long and why.
- Every request rejected alike (HTTP 400): the stage stops after a few, and the task is not retried.
- A port already taken: refused in milliseconds, before vLLM is spawned. A server that never becomes ready
  (vLLM itself refuses a port taken after that check): a clear error well within the start timeout, the process
  gone, the PID file gone, the flow failed with that message, the Hugging Face token nowhere in it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import psutil
import pytest

from grace.config import Config
from grace.errors import ServerError
from grace.server_waits import read_waits
from grace.serving import Endpoint, LocalVLLMServer
from grace.serving.local import pid_dir
from tests.conftest import vllm_processes
from tests.support.fault_proxy import FaultProxy, Faults

pytestmark = pytest.mark.faults
SECRET = "hf_GraceFakeTokenDoNotLeak0123456789abcdef"  # as tests/test_secrets.py


def new_servers(before: set[int]) -> list[psutil.Process]:
    return [p for p in vllm_processes() if p.pid not in before and p.is_running()]


def kill_server_when_rows_appear(ckpt: Path, before: set[int], killed: list[int], min_rows: int = 3) -> None:
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        if ckpt.exists() and ckpt.read_text().count("\n") >= min_rows:
            for p in new_servers(before):
                if p.pid not in killed:
                    killed.append(p.pid)
                    os.killpg(os.getpgid(p.pid), signal.SIGKILL)
            return
        time.sleep(0.5)


@pytest.mark.server  # the flow serves toy itself, twice
def test_server_sigkilled_mid_exp1_is_restarted_by_the_task_retry(
    prefect_server: str, test_config_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.grace_flow import grace

    monkeypatch.setenv("GRACE_CONFIG_DIR", str(test_config_dir))
    before = {p.pid for p in vllm_processes()}
    rid, n = "faults-sigkill", 30
    ckpt = tmp_path / rid / "toy" / "study2" / "exp1.jsonl"
    killed: list[int] = []
    killer = threading.Thread(target=kill_server_when_rows_appear, args=(ckpt, before, killed), daemon=True)
    killer.start()
    # no preflight, rules-only extraction: neither is under test (the kill comes in Exp 1), both only add time
    state = grace(models=["toy"], studies=["study2"], experiments=["exp1"], sample=False, limit=n,
                  max_tokens=16, concurrency=2, out=str(tmp_path), run_id=rid, preflight=False, extract_llm=False,
                  return_state=True)
    killer.join(timeout=5)
    assert killed, "the server was never killed: the fault did not happen"
    assert state.is_completed(), state.message
    lines = [json.loads(x) for x in ckpt.read_text().splitlines()]
    errors_seen = sum(r["status"] == "error" for r in lines)
    table = pd.read_parquet(ckpt.with_suffix(".parquet"))
    counts = Counter(table["trial_id"])
    leaked = new_servers(before)
    waits = read_waits(ckpt.parent, "exp1")
    print(f"FAULTS-TABLE | vLLM server SIGKILLed mid-Exp 1 | 1 flow run, 2 task runs | "
          f"{n} | {len(counts)} | {sum(c - 1 for c in counts.values())} | {len(leaked)}")
    assert len(counts) == n and set(counts.values()) == {1}, "every trial exactly one response"
    assert (table["status"] != "error").all()
    assert errors_seen == 0, "rows the server never answered get no record (not error): the retry asks them"
    assert [w.outcome for w in waits] == ["lost"] and "vLLM exited with signal 9" in waits[0].reason, waits
    assert len(lines) == n, "one line per trial: nothing asked twice"
    assert all(not psutil.pid_exists(pid) or not psutil.Process(pid).is_running() for pid in killed)
    assert not leaked, f"server(s) left running: {[p.pid for p in leaked]}"
    assert json.loads((tmp_path / rid / "run.json").read_text())["status"] == "completed"


def take_port_when_started(run_id: str, held: list[socket.socket], timeout: float = 300) -> None:
    """Listen on the port of run `run_id`'s server as soon as its PID file appears (right after the process is
    spawned, seconds before vLLM binds): the port is taken between Grace's check and vLLM's own bind."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for f in pid_dir().glob("*.json") if pid_dir().exists() else []:
            try:
                info = json.loads(f.read_text())
            except (OSError, ValueError):
                continue  # being written
            if info.get("run_id") == run_id:
                s = socket.socket()
                s.bind(("127.0.0.1", int(info["port"])))
                s.listen(1)
                held.append(s)
                return
        time.sleep(0.01)


@pytest.mark.server  # one vLLM start, meant to fail
def test_a_server_that_dies_while_starting_fails_the_flow_with_the_reason(
    prefect_server: str, test_config_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vLLM's own refusal of a port taken after Grace's check (the one path the check cannot cover): the flow
    fails well within the start timeout with the reason, the process and its PID file are gone, and the
    Hugging Face token handed to vLLM is neither in the error nor in anything written (vLLM's log included)."""
    from flows.grace_flow import grace

    monkeypatch.setenv("GRACE_CONFIG_DIR", str(test_config_dir))
    monkeypatch.setenv("HF_TOKEN", SECRET)
    rid = f"faults-taken-{os.getpid()}"
    before = {p.pid for p in vllm_processes()}
    held: list[socket.socket] = []
    taker = threading.Thread(target=take_port_when_started, args=(rid, held), daemon=True)
    taker.start()
    t0 = time.monotonic()
    try:
        state = grace(models=["toy"], studies=["study2"], experiments=["exp1"], max_tokens=8, out=str(tmp_path),
                      run_id=rid, return_state=True)
        elapsed = time.monotonic() - t0
        taker.join(timeout=5)
    finally:
        for s in held:
            s.close()
    assert held, "the port was never taken: the fault did not happen"
    assert state.is_failed(), state.name
    assert "toy" in state.message and "died while starting" in state.message, state.message
    log = (tmp_path / rid / "logs" / "vllm-toy.log").read_text()
    assert "address already in use" in log.lower(), log[-2000:]
    assert elapsed < 300, f"the failure took {elapsed:.0f}s, longer than the start timeout"
    assert not new_servers(before), "the failed server must be gone"
    assert not any(rid in f.read_text() for f in pid_dir().glob("*.json"))
    assert SECRET not in (state.message or "")
    assert not [str(p) for p in tmp_path.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    print(f"FAULTS-TABLE | server never ready: port taken after the check, vLLM refuses it | 1 | 0 | 0 | 0 | 0   "
          f"(failed in {elapsed:.0f}s)")


def test_port_taken_is_refused_before_vllm_starts(cfg: Config) -> None:
    before = {p.pid for p in vllm_processes()}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        server = LocalVLLMServer(cfg.model("toy"), port=port, run_id="faults-port")  # no vLLM: refused before
        t0 = time.monotonic()
        with pytest.raises(ServerError) as err:
            server.start()
        elapsed = time.monotonic() - t0
    msg = str(err.value)
    assert f"port {port} on 127.0.0.1 is taken (Address already in use): vLLM not started" in msg, msg
    assert elapsed < 1, f"{elapsed:.1f} s"
    assert server.proc is None, "no process may be spawned"
    assert not new_servers(before) and not (pid_dir() / f"{port}.json").exists()
    print(f"FAULTS-TABLE | server never ready: port taken | 1 | 0 | 0 | 0 | 0   (refused in {elapsed * 1000:.0f} ms)")


def test_dark_server_is_waited_through_in_the_same_task_run(
    prefect_server: str, test_config_dir: Path, toy_server: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The endpoint answers nothing for 5 s mid-Exp 1 (a pod restarting behind its Service): no task retry, no
    error row; the stage summary in run.json and the report say how long the stage waited and why."""
    from flows.grace_flow import grace

    monkeypatch.setenv("GRACE_CONFIG_DIR", str(test_config_dir))
    rid, n = "faults-dark", 40
    ckpt = tmp_path / rid / "toy" / "study2" / "exp1.jsonl"
    with FaultProxy(toy_server.base_url) as proxy:
        def outage() -> None:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not (ckpt.exists() and ckpt.read_text().count("\n") >= 5):
                time.sleep(0.05)
            proxy.set(Faults(mode="down"))
            time.sleep(5)
            proxy.set(Faults())

        t = threading.Thread(target=outage, daemon=True)
        t.start()
        state = grace(models=["toy"], studies=["study2"], experiments=["exp1"], sample=False, limit=n, max_tokens=8,
                      concurrency=4, endpoint=proxy.url, out=str(tmp_path), run_id=rid, extract_llm=False,
                      preflight=False, return_state=True)
        t.join(timeout=10)
    assert state.is_completed(), state.message
    assert proxy.injected["down"] > 0
    rows = [json.loads(x) for x in ckpt.read_text().splitlines()]
    assert len(rows) == n and all(r["status"] != "error" for r in rows)
    stage = json.loads((tmp_path / rid / "run.json").read_text())["summary"]["stages"][0]
    assert stage["done_before"] == 0, "one task run did every row: no retry"
    assert stage["server_waits"] == 1 and stage["waited_s"] >= 4 and stage["server_stops"] == 0, stage
    assert "not answering" in stage["wait_reasons"]
    report = json.loads((tmp_path / rid / "report" / "report.json").read_text())
    assert report["models"]["toy"]["study2"]["metrics"]["server"]["exp1"]["waited_s"] == stage["waited_s"]
    assert "Server (exp1): waited" in (tmp_path / rid / "report" / "report.md").read_text()
    print(f"FAULTS-TABLE | endpoint dark 5 s mid-Exp 1 (flow `grace`, 1 task run) | 1 | {n} | {len(rows)} | 0 | 0"
          f"   (waited {stage['waited_s']} s)")


def test_stage_rejected_alike_fails_fast_without_a_task_retry(
    prefect_server: str, test_config_dir: Path, toy_server: Endpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.grace_flow import grace

    monkeypatch.setenv("GRACE_CONFIG_DIR", str(test_config_dir))
    with FaultProxy(toy_server.base_url) as proxy:
        t0 = time.monotonic()
        # no preflight here: the stage's own fail-fast is under test (the preflight stops at its 2 trials,
        # tests/test_chat_roles.py)
        state = grace(models=["toy"], studies=["study2"], experiments=["exp1"], sample=False, limit=40,
                      max_tokens=4000, endpoint=proxy.url, out=str(tmp_path), run_id="faults-rejected",
                      task_retries=2, preflight=False, return_state=True)
        elapsed = time.monotonic() - t0
        sent = proxy.forwarded["/v1/chat/completions"]
    assert state.is_failed(), state.name
    assert "rejected each of the first 5 requests with HTTP 400: max_tokens=4000" in state.message, state.message
    assert sent == 5, f"{sent} requests: a task retry would have sent 5 more"
    print(f"rejected stage: flow failed in {elapsed:.0f} s after {sent} requests")
