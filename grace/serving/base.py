"""The serving contract: a backend is a context manager that yields an Endpoint and always tears down; while a
stage runs, the endpoint carries its backend's `Watch`, which says how the server is (`Health`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

import httpx

from grace.config import ModelConfig, Profile, Reasoning, SystemPrompt
from grace.errors import ServerError
from grace.serving.args import server_env


@dataclass(frozen=True)
class Health:
    """What a backend says about its server: up; down (not answering, maybe restarting); gone for good."""

    state: Literal["up", "down", "gone"]
    reason: str = ""


UP = Health("up")


class Watch(Protocol):
    """A backend's view of its server (grace.serving.watch has those of the backends): `check` must be quick
    (seconds) and never raise."""

    @property
    def restart_timeout_s(self) -> float: ...  # read-only: a backend may derive it (its start timeout)

    @property
    def poll_s(self) -> float: ...

    def check(self, endpoint: Endpoint) -> Health: ...


@dataclass(frozen=True)
class Endpoint:
    """Where the stages send requests: an OpenAI-compatible base URL and the served model name."""

    base_url: str  # e.g. http://127.0.0.1:8000 (without /v1)
    model: str  # the served model name used in requests
    revision: str = "unknown"
    batch_slots: int | None = None  # sequences the server batches at once (None: unknown, e.g. an external URL)
    # What the stages need to know about the served model, filled from its config and, once the server is up,
    # from the server itself (grace.serving.inspect): how the study's system text is sent, the reasoning block.
    chat_form: SystemPrompt = "native"
    system_prompt: SystemPrompt | None = None  # the config's choice; None: detected from the template
    reasoning: Reasoning | None = None
    server_version: str | None = None
    stop_token_ids: tuple[int, ...] = ()  # sent with every chat request (the model config's stop_token_ids)
    server_env: tuple[tuple[str, str], ...] = ()  # the server's own environment from the config (no secrets)
    # A bearer token for an endpoint that needs one (a hosted extraction model): never shown, never compared.
    api_key: str | None = field(default=None, repr=False, compare=False)
    # the backend's view of its server while stages run (grace.serving.watch); None: the readiness probe only
    watch: Watch | None = field(default=None, compare=False, repr=False)

    @property
    def v1(self) -> str:
        return self.base_url.rstrip("/") + "/v1"

    @classmethod
    def of(cls, base_url: str, model: ModelConfig, batch_slots: int | None = None, profile: Profile | None = None
           ) -> Endpoint:
        """The endpoint of `model` served at `base_url` (on `profile`), carrying what its config says about it."""
        env = server_env(model, profile) if profile is not None else {}
        return cls(base_url.rstrip("/").removesuffix("/v1"), model.name, model.revision, batch_slots=batch_slots,
                   chat_form=model.system_prompt or "native", system_prompt=model.system_prompt,
                   reasoning=model.reasoning, stop_token_ids=tuple(model.stop_token_ids),
                   server_env=tuple(sorted(env.items())))


FALLBACK_CONCURRENCY = 64  # requests in flight when neither the experiment nor the server says


def in_flight(endpoint: Endpoint, configured: int | None, override: int | None = None) -> int:
    """Requests to keep in flight: an explicit override, else the experiment's setting, else the server's
    batch slots (enough to keep its batch full), else FALLBACK_CONCURRENCY."""
    return override or configured or endpoint.batch_slots or FALLBACK_CONCURRENCY


def probe(endpoint: Endpoint, timeout: float = 10.0) -> str | None:
    """None when the server is ready: /v1/models lists the model and a one-token completion succeeds.

    The probe request also asks for prompt log-probabilities, which warms vLLM's scoring path (the first
    such request on a cold CPU server takes tens of seconds). Otherwise a short reason.
    """
    try:
        r = httpx.get(f"{endpoint.v1}/models", timeout=timeout)
        if r.status_code != 200:
            return f"/v1/models answered {r.status_code}"
        ids = [m.get("id") for m in r.json().get("data", [])]
        if endpoint.model not in ids:
            return f"/v1/models does not list {endpoint.model!r} (lists {ids})"
        r = httpx.post(
            f"{endpoint.v1}/completions",
            json={"model": endpoint.model, "prompt": "Hello", "max_tokens": 1, "temperature": 0,
                  "prompt_logprobs": 1},
            timeout=max(timeout, 120.0),
        )
        if r.status_code != 200:
            return f"a one-token completion answered {r.status_code}: {r.text[:200]}"
        return None
    except httpx.HTTPError as e:
        return f"{type(e).__name__}: {e}"


def wait_ready(
    endpoint: Endpoint,
    timeout_s: float,
    alive: Callable[[], str | None] = lambda: None,
    interval_s: float = 1.0,
) -> None:
    """Poll `probe` until ready; `alive` returns a reason when the server process has died."""
    deadline = time.monotonic() + timeout_s
    reason = "not probed yet"
    while time.monotonic() < deadline:
        dead = alive()
        if dead:
            raise ServerError(f"server for {endpoint.model} died while starting: {dead}")
        reason = probe(endpoint, timeout=min(10.0, max(1.0, deadline - time.monotonic()))) or ""
        if not reason:
            return
        time.sleep(interval_s)
    raise ServerError(f"server for {endpoint.model} not ready after {timeout_s:.0f}s: {reason}")
