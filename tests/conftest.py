"""Shared fixtures: the real local vLLM servers (started once per session) and a leak check; the markers derived
from the fixtures a test uses, and the guard that holds every test to them (tests/support/lanes.py)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml

from grace.config import Config, load_config
from grace.serving import Endpoint, LocalVLLMServer
from tests.support.lanes import ProcessGuard, derive_markers, run_late

ROOT = Path(__file__).resolve().parent.parent


# Every process this test session starts inherits this marker, so the leak check only ever looks at (and
# kills) servers of this session, never those of another session running beside it.
SESSION_MARK = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
os.environ["GRACE_TEST_SESSION"] = SESSION_MARK

# The servers the suite starts (itself or through Prefect) get one lane's share of the cores as OpenMP threads: on
# two cores, one each (a value set outside wins). The two lanes run servers at the same time, and two CPU engines
# of two threads each on two cores mostly spin waiting for a worker the other one has descheduled: two toy servers
# at once answered 800 trials each in 26.8 s and 48.5 CPU-s with two threads, 12.9 s and 18.9 CPU-s with one; alone
# 5.1 s with two, 5.6 s with one (`python -m benchmarks --models toy --only side-by-side`). The suite, warm, on
# this 2-core machine: 1,145 s -> 911 s. The product keeps vLLM's default: a server alone needs its threads
# (SmolLM2: 61 s with two, 92 s with one, for `grace score` of the study 2 sample).
os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 2) // 2)))


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(ProcessGuard(SESSION_MARK), "grace-process-guard")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    derive_markers(items)
    run_late(items)


def vllm_processes(flow_run_id: object | None = None) -> list[psutil.Process]:
    """vLLM server processes started by this test session (directly or through Prefect); with `flow_run_id`,
    only those started by that flow run (they inherit the worker's PREFECT__FLOW_RUN_ID)."""
    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            if "vllm" not in cmd or p.pid == os.getpid():
                continue
            env = p.environ()
            if env.get("GRACE_TEST_SESSION") != SESSION_MARK:
                continue
            if flow_run_id is None or env.get("PREFECT__FLOW_RUN_ID") == str(flow_run_id):
                out.append(p)
        except psutil.Error:
            continue
    return out


@pytest.fixture(scope="session")
def cfg() -> Config:
    return load_config(ROOT / "config")


@pytest.fixture(scope="session")
def toy_server(cfg: Config) -> Iterator[Endpoint]:
    """The random toy Llama behind the real vLLM CPU server: fast, meaningless answers."""
    with LocalVLLMServer(cfg.model("toy"), run_id="pytest-toy") as ep:
        yield ep


@pytest.fixture(scope="session")
def smollm2_server(cfg: Config) -> Iterator[Endpoint]:
    """SmolLM2-135M-Instruct behind the real vLLM CPU server: real language, slow."""
    with LocalVLLMServer(cfg.model("smollm2"), run_id="pytest-smollm2") as ep:
        yield ep


@pytest.fixture(scope="session")
def gemma2_server(cfg: Config) -> Iterator[Endpoint]:
    """A tiny random-weight Gemma-2 under Gemma-2-it's chat template, which refuses the system role."""
    with LocalVLLMServer(cfg.model("gemma2-tiny"), run_id="pytest-gemma2", start_timeout_s=600) as ep:
        yield ep


@pytest.fixture(scope="session", autouse=True)
def no_leaked_servers() -> Iterator[None]:
    """Every test session must end with no vLLM server left running."""
    yield
    leaked = [p for p in vllm_processes() if p.is_running()]
    for p in leaked:
        p.kill()
    assert not leaked, f"vLLM servers left running after the tests: {[p.pid for p in leaked]}"


# --- Prefect: a real server (SQLite in a temporary home) and a real process worker -------------------------

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def test_config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's config with a short request-retry policy, so fault tests fail over in seconds."""
    d = tmp_path_factory.mktemp("config")
    shutil.copy(ROOT / "config" / "models.yaml", d / "models.yaml")
    exp = yaml.safe_load((ROOT / "config" / "experiments.yaml").read_text())
    for s in exp["studies"].values():
        s["input"] = str(ROOT / s["input"])
        s["sample"] = str(ROOT / s["sample"])
    for e in exp["experiments"]:
        e["retry"] = {"attempts": 2, "backoff_initial_s": 0.1, "backoff_max_s": 0.5, "request_timeout_s": 60}
    (d / "experiments.yaml").write_text(yaml.safe_dump(exp, sort_keys=False))
    return d


def _prefect_console_handlers() -> list[logging.StreamHandler[Any]]:
    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger(), *(x for x in logging.Logger.manager.loggerDict.values()
                                      if isinstance(x, logging.Logger))]
    return [h for lg in loggers for h in lg.handlers if isinstance(h, PrefectConsoleHandler)]


@pytest.fixture(autouse=True)
def _prefect_console_outlives_capture() -> Iterator[None]:
    """A flow run in this process under `capfd` can leave Prefect's console handlers writing to capfd's stream,
    which is closed after that test: the next in-process flow run then fails inside Prefect's logging. After each
    test, a handler left on a closed stream writes to the stream of before the test again."""
    before = sys.stderr
    yield
    if "prefect.logging.handlers" not in sys.modules:
        return
    for h in _prefect_console_handlers():
        if getattr(h.stream, "closed", False):
            h.stream = before  # not setStream: it flushes the closed one first
            h.console.file = before  # type: ignore[attr-defined]  # PrefectConsoleHandler's rich Console


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`prefect server start` on a free port with its own SQLite database; yields the API URL."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": url,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           # a run queued behind the deployment's concurrency limit retries every 5 s (default 30 s)
           "PREFECT_SERVER_DEPLOYMENTS_CONCURRENCY_SLOT_WAIT_SECONDS": "5"}
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen([str(ROOT / ".venv/bin/prefect"), "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=home)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, (home / "server.log").read_text()[-2000:]
            time.sleep(1)
        else:
            raise AssertionError("Prefect server not healthy after 180 s")
        os.environ["PREFECT_API_URL"] = url
        os.environ["PREFECT_HOME"] = str(home)
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield url
    finally:
        _stop(proc)
        log.close()


@pytest.fixture(scope="session")
def view_address(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """Where the session's trial viewer serves (`grace view --root`, the `trial_viewer` fixture) and its root:
    the session's temporary folder, under which every test's run folder lies."""
    return f"http://127.0.0.1:{_free_port()}", tmp_path_factory.getbasetemp()


@pytest.fixture(scope="session")
def prefect_env(prefect_server: str, test_config_dir: Path, view_address: tuple[str, Path]) -> dict[str, str]:
    """Environment for Prefect CLI calls and the worker (its flow runs inherit it)."""
    return {**os.environ, "PREFECT_API_URL": prefect_server, "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_WORKER_PREFETCH_SECONDS": "2", "GRACE_CONFIG_DIR": str(test_config_dir),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "GRACE_VIEW_URL": view_address[0], "GRACE_VIEW_ROOT": str(view_address[1])}


@pytest.fixture(scope="session")
def trial_viewer(view_address: tuple[str, Path]) -> Iterator[str]:
    """`grace view --root` over the session's run folders, as scripts/prefect-up.sh starts it; yields its URL."""
    url, root = view_address
    proc = subprocess.Popen([str(ROOT / ".venv/bin/grace"), "view", "--root", str(root), "--port",
                             url.rsplit(":", 1)[1]], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "grace view did not start"
            time.sleep(0.5)
        yield url
    finally:
        _stop(proc)


def prefect_cli(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([str(ROOT / ".venv/bin/prefect"), "--no-prompt", *args], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"prefect {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out


@pytest.fixture(scope="session")
def full_study_deployment(prefect_env: dict[str, str]) -> str:
    """grace/full-study registered from prefect.yaml, exactly as scripts/run-study.sh does."""
    prefect_cli(prefect_env, "work-pool", "create", "grace-local", "--type", "process", "--overwrite")
    prefect_cli(prefect_env, "deploy", "--name", "full-study")
    return "grace/full-study"


@pytest.fixture(scope="session")
def prefect_worker(prefect_env: dict[str, str], full_study_deployment: str,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen[bytes]]:
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([str(ROOT / ".venv/bin/prefect"), "worker", "start", "--pool", "grace-local",
                             "--type", "process"], env=prefect_env, cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    time.sleep(3)
    assert proc.poll() is None, log_path.read_text()
    try:
        yield proc
    finally:
        _stop(proc)
        log.close()


# --- the README's run through the deployment, shared by the tests that only read what it left ---------------

@dataclass(frozen=True)
class SampleRun:
    flow_run: Any  # prefect.client.schemas.objects.FlowRun, in its final state
    out: Path  # the `out` parameter: the run folder is out / run_dir.name
    run_dir: Path


def wait_final_flow_run(flow_run_id: object, timeout: float = 900) -> Any:
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            run = client.read_flow_run(flow_run_id)
            if run.state and run.state.is_final():
                return run
            assert time.monotonic() < deadline, f"flow run {flow_run_id} not final after {timeout}s: {run.state}"
            time.sleep(2)


@pytest.fixture(scope="session")
def readme_run(full_study_deployment: str, prefect_worker: object, trial_viewer: str,
               tmp_path_factory: pytest.TempPathFactory) -> SampleRun:
    """The README's run, once per session through the real worker: grace/full-study with the deployment's
    parameters as prefect.yaml sets them (SmolLM2, both studies, both experiments, the 10-row samples), its results
    in the session's folder that the trial viewer (`grace view --root`, as scripts/prefect-up.sh starts it)
    serves; final, not asserted. Its readers: the flow's protocol (test_prefect_flow), the analysis tables
    (test_analysis_run), the UI in Chromium (test_ui_browser)."""
    from prefect.deployments import run_deployment

    out = tmp_path_factory.mktemp("readme-run")
    # Its server gets every core as OpenMP threads that sleep while they wait (OMP_WAIT_POLICY=PASSIVE), not one
    # lane's share: it goes last in its lane (tests/support/lanes.py, LATE_FIXTURES), beside the other lane's last
    # tests (one busy core) for the first two thirds of its time and alone for the rest. `grace score --model smollm2
    # --study study2 --sample`, measured on this 2-core machine: beside a busy core 96 s with one thread, 102 s with
    # two passive, 106 s with two spinning (OpenMP's default, which made its fixture 249-266 s in the suite); alone
    # 93 s with one thread, 62 s with two passive. Its fixture on three fresh clones: 183, 196 and 202 s (217 s with one
    # thread, the same hour).
    cores = {"env": {"OMP_NUM_THREADS": str(os.cpu_count() or 1), "OMP_WAIT_POLICY": "PASSIVE"}}
    # in a thread of its own (with this one's context: the session's Prefect settings): Playwright's sync API runs
    # an event loop in the browser tests' thread, where Prefect's run_deployment would hand back a coroutine
    with ThreadPoolExecutor(1) as pool:
        started = pool.submit(copy_context().run, run_deployment, full_study_deployment,
                              parameters={"out": str(out)}, job_variables=cores, timeout=0).result()
    run = wait_final_flow_run(started.id, timeout=3600)
    return SampleRun(flow_run=run, out=out, run_dir=out / f"{run.name}-{str(run.id)[:8]}")
