"""An already running OpenAI-compatible server: nothing to start, nothing to stop."""

from __future__ import annotations

from types import TracebackType

from grace.config import ModelConfig
from grace.serving.base import Endpoint, wait_ready
from grace.serving.inspect import inspect_endpoint


class ExternalServer:
    """Attach to `base_url`; `model` is the served model's config entry (or just its served name)."""

    def __init__(self, base_url: str, model: ModelConfig | str, revision: str = "unknown",
                 ready_timeout_s: float = 30, batch_slots: int | None = None, profile: str | None = None) -> None:
        if isinstance(model, ModelConfig):
            prof = model.profiles.get(profile) if profile else None  # type: ignore[call-overload]
            self.endpoint = Endpoint.of(base_url, model, batch_slots=batch_slots, profile=prof)
        else:
            self.endpoint = Endpoint(base_url.rstrip("/").removesuffix("/v1"), model, revision,
                                     batch_slots=batch_slots)
        self.ready_timeout_s = ready_timeout_s

    def __enter__(self) -> Endpoint:
        wait_ready(self.endpoint, self.ready_timeout_s)
        self.endpoint = inspect_endpoint(self.endpoint)
        return self.endpoint

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None
