"""The backends' watches: how each backend tells whether its server is up, down (maybe restarting) or gone.

A watch (the `Watch` contract of grace.serving.base) travels on the endpoint a backend yields; the stage's
request gate (grace.serving.gate) asks it when a request's connection fails. Kubernetes' watch is the
Deployment's own (grace.serving.kubernetes).
"""

from __future__ import annotations

import signal
from typing import Any

from grace.serving.base import UP, Endpoint, Health, probe

DEFAULT_RESTART_WAIT_S = 900.0  # how long an endpoint we know nothing else about may take to come back


def probed(endpoint: Endpoint, timeout: float = 10.0) -> Health:
    reason = probe(endpoint, timeout=timeout)
    return UP if reason is None else Health("down", f"not answering: {reason}")


class HealthWatch:
    """An endpoint known only by its URL (an external server): its readiness probe. Unreachable means "maybe
    restarting", so the stage waits up to `restart_timeout_s` before giving up."""

    def __init__(self, restart_timeout_s: float = DEFAULT_RESTART_WAIT_S, poll_s: float = 2.0) -> None:
        self.restart_timeout_s = restart_timeout_s
        self.poll_s = poll_s

    def check(self, endpoint: Endpoint) -> Health:
        return probed(endpoint)


def exit_reason(returncode: int | None) -> str:
    """'vLLM exited with signal 9 (SIGKILL)' / 'vLLM exited with code 1'."""
    if returncode is None:
        return "vLLM was not started"
    if returncode < 0:
        try:
            name = f" ({signal.Signals(-returncode).name})"
        except ValueError:
            name = ""
        return f"vLLM exited with signal {-returncode}{name}"
    return f"vLLM exited with code {returncode}"


class ProcessWatch:
    """A local server process (grace.serving.local.LocalVLLMServer): exited means gone, with its exit status;
    alive but not answering means down (waited for up to the server's start timeout)."""

    def __init__(self, server: Any, poll_s: float = 1.0) -> None:
        self.server = server
        self.poll_s = poll_s

    @property
    def restart_timeout_s(self) -> float:
        return float(self.server.start_timeout_s)

    def check(self, endpoint: Endpoint) -> Health:
        proc = self.server.proc
        if proc is None or proc.poll() is not None:
            code = None if proc is None else proc.returncode
            tail = "" if code is None or code < 0 else f"; last log line: {self.server.log_tail(1)}"
            return Health("gone", exit_reason(code) + tail)
        return probed(endpoint)
