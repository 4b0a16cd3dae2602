"""Overnight runs through a real Prefect server and a real process worker (toy model): one study run at a
time (the deployments' concurrency limit), a named study that each run continues until nothing is left to
do, and the failure notification (a Prefect automation) against a webhook receiver on 127.0.0.1."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import get_client
from prefect.variables import Variable

from flows import notify
from grace.serving import Endpoint
from tests.conftest import ROOT, prefect_cli, vllm_processes
from tests.support.fault_proxy import FaultProxy, Faults
from tests.support.prefect_runs import artifacts_of, flow_run_process, forget, run_tree
from tests.test_prefect_flow import jsonl, start, wait_final

BLOCK = "grace-test-alerts"


class WebhookReceiver:
    """A local webhook endpoint (127.0.0.1) that keeps every JSON body posted to it."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.payloads.append(json.loads(body or b"{}"))
                self.send_response(204)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, text: str, timeout: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in list(self.payloads):
                if text in p.get("body", ""):
                    return p
            time.sleep(1)
        raise AssertionError(f"no notification mentioning {text!r} within {timeout:.0f}s: {self.payloads}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def notify_in_process(*args: str, block: str | None = None) -> tuple[int, str]:
    """`python -m flows.notify` run in this process (the server's URL is this session's)."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        mp.delenv("GRACE_NOTIFY_BLOCK", raising=False)
        if block:
            mp.setenv("GRACE_NOTIFY_BLOCK", block)
        rc = notify.main(list(args))
    return rc, out.getvalue() + err.getvalue()


@pytest.fixture(scope="module")
def alerts(prefect_env: dict[str, str], full_study_deployment: str) -> Iterator[WebhookReceiver]:
    """The lab's notification block (a custom webhook to a local receiver) and the automation, registered by
    the set-up's step; removed afterwards so other tests' failures send nothing."""
    receiver = WebhookReceiver()
    CustomWebhookNotificationBlock(name="grace-tests", url=receiver.url,
                                   json_data={"subject": "{{subject}}", "body": "{{body}}"}).save(BLOCK, overwrite=True)
    try:
        rc, said = notify_in_process()
        assert rc == 0 and "failure notifications: not configured" in said, said
        rc, said = notify_in_process(block="custom-webhook/no-such-block")
        assert rc == 2 and "not found" in said and said.count("\n") == 1, said
        # as scripts/prefect-up.sh runs it, the block named in the environment
        env = {**prefect_env, "GRACE_NOTIFY_BLOCK": f"custom-webhook/{BLOCK}"}
        out = subprocess.run([str(ROOT / ".venv/bin/python"), "-m", "flows.notify"], env=env, cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "failure notifications: on" in out.stdout, out.stdout + out.stderr
        # or named by the Prefect Variable; set-up run again: still exactly one automation
        Variable.set(notify.VARIABLE, f"custom-webhook/{BLOCK}", overwrite=True)
        rc, said = notify_in_process()
        assert rc == 0 and "failure notifications: on" in said, said
        with get_client(sync_client=True) as client:
            assert len(client.read_automations_by_name(notify.AUTOMATION)) == 1
        yield receiver
    finally:
        Variable.unset(notify.VARIABLE)
        notify.unregister()
        receiver.close()


class ServerSampler:
    """Samples, every 0.3 s, which flow runs have a vLLM server process."""

    def __init__(self) -> None:
        self.samples: list[set[str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            runs = set()
            for p in vllm_processes():
                try:
                    runs.add(p.environ().get("PREFECT__FLOW_RUN_ID", "?"))
                except psutil.Error:
                    continue
            runs.discard("?")  # the session's own toy/smollm2 servers are not flow runs'
            self.samples.append(runs)
            self._stop.wait(0.3)

    def seen(self, runs: set[str]) -> set[str]:
        """Which of these flow runs had a server at some moment."""
        return set().union(*self.samples) & runs

    def overlaps(self, runs: set[str]) -> list[set[str]]:
        """The moments at which more than one of these flow runs had a server."""
        return [s & runs for s in self.samples if len(s & runs) > 1]

    def __enter__(self) -> ServerSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def state_names(flow_run_id: Any) -> list[str]:
    with get_client(sync_client=True) as client:
        return [s.name for s in client.read_flow_run_states(flow_run_id)]


def nightly_parameters(deployment: str) -> dict[str, Any]:
    """What the nightly schedule starts: the deployment's parameters with the schedule's on top."""
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name(deployment)
    (nightly,) = [s for s in dep.schedules if s.slug == "nightly"]
    return {**dep.parameters, **nightly.parameters}


def test_both_deployments_carry_the_limit_and_the_nightly_schedule(
    full_study_deployment: str, prefect_env: dict[str, str]
) -> None:
    with get_client(sync_client=True) as client:  # the k8s deployment read below is the one registered here
        forget(client, deployment="grace/full-study-k8s", work_pool="grace-k8s")
    prefect_cli(prefect_env, "work-pool", "create", "grace-k8s", "--type", "kubernetes", "--base-job-template",
                str(ROOT / "deployments" / "kubernetes" / "base-job-template.json"), "--overwrite")
    prefect_cli(prefect_env, "deploy", "--name", "full-study-k8s")
    for name in (full_study_deployment, "grace/full-study-k8s"):
        dep = json.loads(prefect_cli(prefect_env, "deployment", "inspect", name, "-o", "json").stdout)
        assert dep["global_concurrency_limit"]["limit"] == 1, name
        assert dep["concurrency_options"]["collision_strategy"] == "ENQUEUE", name
        (nightly,) = dep["schedules"]
        assert nightly["schedule"]["cron"] == "0 2 * * *" and nightly["active"] is False, name
        assert nightly["slug"] == "nightly" and nightly["parameters"] == {"study_id": "main"}, name


@pytest.mark.timeout(1500)  # three study runs through the worker: 270-460 s measured on the loaded machine
def test_queued_run_waits_then_continues_the_named_study_then_nothing_is_left(
    full_study_deployment: str, prefect_worker: object, alerts: WebhookReceiver, tmp_path: Path
) -> None:
    """Run A of the nightly study is started, and B (the same study, as the schedule starts it) right after:
    B waits for the slot (ENQUEUE). A's flow-run process is killed mid-model (Crashed, with word sent); B
    then gets the slot and continues A's study, asking exactly the rows A had not written; its server is gone
    when it ends. C, the same again, ends at once as Completed with nothing left to do. At no moment do two runs
    have a vLLM server. (This took over what tests/test_faults_worker.py checked: the same kill, the server
    gone, the resume.)"""
    params = {**nightly_parameters(full_study_deployment), "models": ["toy"], "studies": ["study2"],
              "experiments": ["exp1"], "sample": False, "limit": 120, "max_tokens": 16, "concurrency": 2,
              "extract_llm": False, "preflight": False, "out": str(tmp_path)}  # neither is under test here
    study = params["study_id"]
    folder = tmp_path / study
    ckpt = folder / "toy" / "study2" / "exp1.jsonl"
    with ServerSampler() as sampler:
        a = start(full_study_deployment, **params)
        b = start(full_study_deployment, **params)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if ckpt.exists() and len(ckpt.read_bytes().splitlines()) >= 10:
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"no run wrote rows; states: {state_names(a.id)}, {state_names(b.id)}")
        # The worker may pick up either of the two first: A is the one that got the slot, B the one waiting.
        waiting = [r for r in (a, b) if "AwaitingConcurrencySlot" in state_names(r.id)]
        assert len(waiting) == 1, f"one run must wait while the other holds the slot: " \
            f"{state_names(a.id)}, {state_names(b.id)}"
        a, b = (b, a) if waiting[0] is a else (a, b)
        assert not vllm_processes(b.id), "B must not start a server while A runs"
        proc = flow_run_process(str(a.id))
        assert proc is not None, "A's flow-run process not found"
        a_servers = vllm_processes(a.id)
        assert a_servers, "A's vLLM server should be running mid-model"
        os.kill(proc.pid, signal.SIGKILL)  # no hook, no finally: only the server's parent-death signal is left
        t0 = time.monotonic()
        alive = psutil.wait_procs(a_servers, timeout=60)[1]
        assert not alive, f"A's vLLM server outlived its flow run by 60 s: {[p.pid for p in alive]}"
        print(f"A's server gone {time.monotonic() - t0:.1f}s after its flow-run process was killed")
        a_final = wait_final(a.id, timeout=120)
        assert a_final.state.is_crashed(), a_final.state.name
        before = {r["trial_id"] for r in jsonl(ckpt) if r["status"] != "error"}
        assert 0 < len(before) < 120

        b_final = wait_final(b.id, timeout=600)
        assert b_final.state.is_completed(), b_final.state.message
        with get_client(sync_client=True) as client:  # the named study's artifacts keep their own history
            b_keys = {x.key for x in artifacts_of(client, run_tree(client, b.id))}
        assert {f"grace-{study}-run", f"grace-{study}-toy-stages", f"grace-{study}-report"} <= b_keys, b_keys
        assert not psutil.wait_procs(vllm_processes(b.id), timeout=30)[1], "B's server is gone once B ended"
        assert b_final.start_time >= a_final.end_time, "B ran only after A had ended"
        records = jsonl(ckpt)
        rows_after = ckpt.read_bytes()
        meta_after = (folder / "run.json").read_bytes()

        c = start(full_study_deployment, **params)
        c_final = wait_final(c.id, timeout=180)
    assert c_final.state.is_completed() and "nothing left to do" in c_final.state.message, c_final.state
    ours = {str(a.id), str(b.id), str(c.id)}
    assert sampler.seen(ours) == {str(a.id), str(b.id)}, "A and B had a server, C (nothing to do) none"
    assert not sampler.overlaps(ours), f"two runs had vLLM servers at once: {sampler.overlaps(ours)[:3]}"

    keys = [r["trial_id"] for r in records]
    assert len(keys) == len(set(keys)) == 120, "every trial exactly once, 0 duplicated"
    asked_by_b = sum(r["attempts"] for r in records if r["trial_id"] not in before)
    assert asked_by_b == 120 - len(before), f"B asked {asked_by_b} for {120 - len(before)} missing rows"
    meta = json.loads(meta_after)
    assert meta["status"] == "completed" and meta["summary"]["stages"][0]["done_before"] == len(before)
    assert ckpt.read_bytes() == rows_after and (folder / "run.json").read_bytes() == meta_after, \
        "the third run must not recompute or rewrite anything"
    assert not list(tmp_path.glob(f"{study}-*")), "a named study has one folder, not one per flow run"

    crashed = alerts.wait_for(f"/runs/flow-run/{a.id}")  # A's own notification (its UI link), not a namesake's
    print(f"notification:\n{crashed['subject']}\n{crashed['body']}")
    assert f"flow run {a_final.name} of full-study ended Crashed" in crashed["body"], crashed["body"]
    assert "Model it was on: toy" in crashed["body"] and f"Study: {study}" in crashed["body"], crashed["body"]


def test_failure_notification_names_the_run_model_and_stage(
    full_study_deployment: str, prefect_worker: object, alerts: WebhookReceiver, toy_server: Endpoint,
    tmp_path: Path,
) -> None:
    with FaultProxy(toy_server.base_url, Faults(mode="503", paths=("/v1/chat/completions",))) as proxy:
        run = start(full_study_deployment, models=["toy"], studies=["study1"], experiments=["exp1"], limit=3,
                    max_tokens=8, concurrency=1, endpoint=proxy.url, task_retries=0, extract_llm=False,
                    preflight=False, out=str(tmp_path))  # the stage itself must fail, not the preflight
        run = wait_final(run.id)
    assert run.state.is_failed(), run.state.name
    assert "toy: study1-exp1 failed" in run.state.message, run.state.message
    link = f"/runs/flow-run/{run.id}"  # this run's own notification, not one of a run with the same name
    sent = alerts.wait_for(link)
    body = sent["body"]
    print(f"notification:\n{sent['subject']}\n{body}")
    assert sent["subject"] == f"Grace: flow run {run.name} Failed", sent["subject"]
    assert "toy: study1-exp1 failed" in body, body
    time.sleep(5)  # the model subflow's own Failed event must not send a second one
    with get_client(sync_client=True) as client:
        links = [f"/runs/flow-run/{r.id}" for r in run_tree(client, run.id)]
    assert len(links) > 1, "the run has its model subflow run"
    assert [p for p in alerts.payloads if any(x in p["body"] for x in links)] == [sent], alerts.payloads
