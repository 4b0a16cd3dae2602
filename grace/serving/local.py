"""A vLLM OpenAI-compatible server as a local process (the default; CPU on this machine).

The server runs in its own process group and is always stopped on leaving the context: on success, on an
exception, on Ctrl-C. A PID file with the run id lets a later run find and stop a server whose owner was
killed (`stop_stale_servers`). On Linux the server also gets SIGTERM if the starting thread's process dies.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType

import psutil

from grace.config import ModelConfig
from grace.errors import ServerError
from grace.paths import cache_dir, project_root, vllm_python
from grace.serving.args import server_env, vllm_args
from grace.serving.base import Endpoint, wait_ready
from grace.serving.inspect import inspect_endpoint
from grace.serving.prefetch import local_hub_cache
from grace.serving.watch import ProcessWatch

PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_taken(port: int, host: str = "127.0.0.1") -> str | None:
    """Why a server could not listen on host:port (another process listens there), or None if it could. Binds
    as vLLM does (SO_REUSEADDR), so a port whose last connections are in TIME_WAIT counts as free."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            return e.strerror or str(e)
    return None


def pid_dir() -> Path:
    return cache_dir() / "run" / "servers"


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def kill_group(pid: int, grace_s: float = 15.0, pgid: int | None = None, drain_s: float = 3.0) -> None:
    """SIGTERM the process group of `pid` (or `pgid`, when the leader may be gone already), then SIGKILL whatever
    is left after `grace_s`, or `drain_s` after the leader's children (vLLM's EngineCore) have exited.

    On SIGTERM vLLM aborts the requests in flight and its engine exits at once. An exited child its parent has not
    reaped yet is a zombie, which counts as gone here: waiting for it to vanish kept a server stopped under load
    for the whole 15 s (measured, toy model, 4 requests in flight: 16.4 s; now 1.6 s, as idle). Once the engine is
    gone no answer can come, so the API server gets at most `drain_s` more to close its connections."""
    if pgid is None:
        try:
            pgid = os.getpgid(pid)
        except ProcessLookupError:
            return
    members = [p for p in psutil.process_iter(["pid"]) if _pgid(p.pid) == pgid]
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    children = [p for p in members if p.pid != pgid]
    while children and time.monotonic() < deadline and any(_running(p) for p in children):
        time.sleep(0.1)
    left = max(0.0, deadline - time.monotonic())
    leader = [p for p in members if p.pid == pgid]
    _, alive = psutil.wait_procs(leader, timeout=min(left, drain_s) if children else left)
    alive += [p for p in children if _running(p)]
    if alive:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        psutil.wait_procs(alive, timeout=5)


def _running(p: psutil.Process) -> bool:
    """Alive and not a zombie (an exited child its busy parent has not reaped yet)."""
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


class LocalVLLMServer:
    """Context manager: start `python -m vllm.entrypoints.openai.api_server` and yield its Endpoint."""

    def __init__(
        self,
        model: ModelConfig,
        *,
        profile: str = "local",
        port: int | None = None,
        run_id: str = "adhoc",
        seed: int | None = 2026,
        start_timeout_s: float = 300,
        log_path: Path | None = None,
        weights: str | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.model = model
        self.profile_name = profile
        self.profile = model.profile(profile)
        self.port = port or free_port()
        self.run_id = run_id
        self.seed = seed
        self.start_timeout_s = start_timeout_s
        self.weights = weights or model.weights
        self.log_path = log_path or cache_dir() / "logs" / f"vllm-{model.name}-{self.port}.log"
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.endpoint = dataclasses.replace(
            Endpoint.of(f"http://127.0.0.1:{self.port}", model, batch_slots=self.profile.batch_slots,
                        profile=self.profile), watch=ProcessWatch(self))

    @property
    def command(self) -> list[str]:
        hub = self.weights == self.model.hf_id  # served from the Hugging Face cache the prefetch filled
        args = vllm_args(self.model, self.profile, weights=self.weights, port=self.port, host="127.0.0.1",
                         seed=self.seed, cpu=self.profile.gpu_count == 0, hardware=self.profile_name,
                         download_dir=str(local_hub_cache()) if hub else None)
        return [str(vllm_python()), "-m", "vllm.entrypoints.openai.api_server", *args]

    def _env(self) -> dict[str, str]:
        cache = cache_dir()
        env = dict(os.environ)
        env.update({
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "VLLM_CACHE_ROOT": str(cache / "vllm-cache"),
            "TORCHINDUCTOR_CACHE_DIR": str(cache / "inductor-cache"),
            "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
            "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
            "PYTHONUNBUFFERED": "1",
            "HF_HUB_CACHE": str(local_hub_cache()),  # where `grace prefetch` put a hub model's pinned commit
        })
        # Never hand the project venv's variables to the server's interpreter.
        env.pop("VIRTUAL_ENV", None)
        env.pop("PYTHONPATH", None)
        env.update(server_env(self.model, self.profile))
        env.update(self.extra_env)
        return env

    def _died(self) -> str | None:
        if self.proc is None or self.proc.poll() is None:
            return None
        return f"exit code {self.proc.returncode}; last log lines:\n{self.log_tail()}"

    def log_tail(self, n: int = 15) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def start(self) -> Endpoint:
        py = vllm_python()
        if not py.exists():
            raise ServerError(f"vLLM server interpreter {py} not found: run scripts/setup.sh first")
        if self.model.local_path and not Path(self.weights).exists():
            raise ServerError(f"model {self.model.name}: weights {self.weights} not found: run scripts/setup.sh")
        if (taken := port_taken(self.port)) is not None:  # known before vLLM spends its start-up on it
            raise ServerError(f"model {self.model.name}: port {self.port} on 127.0.0.1 is taken ({taken}): vLLM "
                              "not started; stop what listens there or choose another port")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        in_main = threading.current_thread() is threading.main_thread()
        self.proc = subprocess.Popen(
            self.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self._env(),
            cwd=str(project_root()),
            start_new_session=True,  # its own process group: teardown kills the engine child too
            preexec_fn=_die_with_parent if in_main else None,
        )
        log.close()
        self._write_pid_file()
        try:
            wait_ready(self.endpoint, self.start_timeout_s, alive=self._died)
            self.endpoint = inspect_endpoint(self.endpoint)
        except BaseException as e:
            self.stop()
            if isinstance(e, ServerError):
                raise ServerError(f"{e}\n--- vLLM log ({self.log_path}) ---\n{self.log_tail()}") from None
            raise
        return self.endpoint

    def stop(self) -> None:
        if self.proc is not None:
            # The server leads its own process group (start_new_session), so the group outlives a killed leader:
            # its EngineCore child is still there and ignores SIGTERM once orphaned, hence SIGKILL at once then.
            leader_gone = self.proc.poll() is not None
            kill_group(self.proc.pid, grace_s=0.0 if leader_gone else 15.0, pgid=self.proc.pid)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._pid_file().unlink(missing_ok=True)

    def _pid_file(self) -> Path:
        return pid_dir() / f"{self.port}.json"

    def _write_pid_file(self) -> None:
        assert self.proc is not None
        pid_dir().mkdir(parents=True, exist_ok=True)
        self._pid_file().write_text(json.dumps({
            "pid": self.proc.pid, "port": self.port, "model": self.model.name, "run_id": self.run_id,
            "owner_pid": os.getpid(), "started": time.time(),
        }))

    def __enter__(self) -> Endpoint:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def stop_stale_servers(run_id: str | None = None, only_orphans: bool = True) -> list[dict[str, object]]:
    """Stop servers recorded in PID files (of `run_id`, or all) whose owner process is gone (or all)."""
    stopped = []
    for f in sorted(pid_dir().glob("*.json")) if pid_dir().exists() else []:
        try:
            info = json.loads(f.read_text())
        except (OSError, ValueError):
            f.unlink(missing_ok=True)
            continue
        if run_id is not None and info.get("run_id") != run_id:
            continue
        if only_orphans and psutil.pid_exists(int(info.get("owner_pid", -1))):
            continue
        pid = int(info["pid"])
        if psutil.pid_exists(pid) and _is_vllm(pid):
            kill_group(pid)
            stopped.append(info)
        f.unlink(missing_ok=True)
    return stopped


def _is_vllm(pid: int) -> bool:
    try:
        return "vllm" in " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return False
