"""An already running OpenAI-compatible server: nothing to start, nothing to stop."""

from __future__ import annotations

from types import TracebackType

from grace.serving.base import Endpoint, wait_ready


class ExternalServer:
    def __init__(self, base_url: str, model: str, revision: str = "unknown", ready_timeout_s: float = 30,
                 batch_slots: int | None = None, stop_token_ids: tuple[int, ...] = ()) -> None:
        self.endpoint = Endpoint(base_url.rstrip("/").removesuffix("/v1"), model, revision, batch_slots=batch_slots,
                                 stop_token_ids=stop_token_ids)
        self.ready_timeout_s = ready_timeout_s

    def __enter__(self) -> Endpoint:
        wait_ready(self.endpoint, self.ready_timeout_s)
        return self.endpoint

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None
