"""An already running OpenAI-compatible server: nothing to start, nothing to stop.

All Grace can know about it is its readiness probe: while a stage runs, an endpoint that stops answering may be
restarting (a pod behind a Service), so the stage waits up to `restart_timeout_s` for it (grace.serving.gate).
"""

from __future__ import annotations

import dataclasses
from types import TracebackType

from grace.config import ModelConfig, is_profile
from grace.serving.base import Endpoint, wait_ready
from grace.serving.inspect import inspect_endpoint
from grace.serving.watch import DEFAULT_RESTART_WAIT_S, HealthWatch


class ExternalServer:
    """Attach to `base_url`; `model` is the served model's config entry (or just its served name)."""

    def __init__(self, base_url: str, model: ModelConfig | str, revision: str = "unknown",
                 ready_timeout_s: float = 30, batch_slots: int | None = None, profile: str | None = None,
                 restart_timeout_s: float = DEFAULT_RESTART_WAIT_S) -> None:
        if isinstance(model, ModelConfig):
            prof = model.profiles.get(profile) if profile and is_profile(profile) else None
            endpoint = Endpoint.of(base_url, model, batch_slots=batch_slots, profile=prof)
        else:
            endpoint = Endpoint(base_url.rstrip("/").removesuffix("/v1"), model, revision, batch_slots=batch_slots)
        self.endpoint = dataclasses.replace(endpoint, watch=HealthWatch(restart_timeout_s))
        self.ready_timeout_s = ready_timeout_s

    def __enter__(self) -> Endpoint:
        wait_ready(self.endpoint, self.ready_timeout_s)
        self.endpoint = inspect_endpoint(self.endpoint)
        return self.endpoint

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None
