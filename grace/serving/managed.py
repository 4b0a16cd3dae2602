"""A model's server kept up across its stages: a dead server is restarted before the next attempt."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from types import TracebackType

from grace.errors import ServerError
from grace.records import ServerLife
from grace.serving.base import Endpoint, probe
from grace.serving.metrics import Snapshot, read_snapshot

log = logging.getLogger(__name__)
Backend = AbstractContextManager[Endpoint]


class ManagedServer:
    """Context manager around a backend factory; `ensure_alive()` restarts the server if it stopped answering.

    Each start is kept in `lives` (grace.records.ServerLife: how long it took, how long it was up, how
    much of that its batch ran requests), read from /metrics when it is ready and when it is stopped.
    """

    def __init__(self, factory: Callable[[], Backend], max_restarts: int = 3) -> None:
        self.factory = factory
        self.max_restarts = max_restarts
        self.restarts = 0
        self._backend: Backend | None = None
        self._endpoint: Endpoint | None = None
        self.lives: list[ServerLife] = []
        self._up_since = 0.0
        self._first: Snapshot | None = None

    @property
    def endpoint(self) -> Endpoint:
        if self._endpoint is None:
            raise ServerError("server not started")
        return self._endpoint

    def _start(self) -> Endpoint:
        asked, t0 = datetime.now(UTC).isoformat(), time.monotonic()
        try:
            self._backend = self.factory()
            self._endpoint = self._backend.__enter__()
        except BaseException:
            self._backend = None
            self.lives.append(ServerLife(started_at=asked, start_s=round(time.monotonic() - t0, 3), ready=False))
            raise
        self._up_since = time.monotonic()
        self.lives.append(ServerLife(started_at=asked, start_s=round(self._up_since - t0, 3),
                                     batch_slots=self._endpoint.batch_slots))
        self._first = read_snapshot(self._endpoint.base_url)
        return self._endpoint

    def _stop(self) -> None:
        backend, endpoint, self._backend, self._endpoint = self._backend, self._endpoint, None, None
        if endpoint is not None and self.lives:
            last = read_snapshot(endpoint.base_url)
            ran = (last.request_s - self._first.request_s if last is not None and self._first is not None
                   and last.request_s >= self._first.request_s else None)
            life = self.lives[-1]
            life.up_s = round(time.monotonic() - self._up_since, 3)
            life.request_s = round(ran, 3) if ran is not None else None
        if backend is not None:
            backend.__exit__(None, None, None)

    def ensure_alive(self) -> Endpoint:
        """The endpoint, after one readiness probe; a server that fails it is restarted (a hung one costs one
        probe's timeout, not two)."""
        reason = probe(self._endpoint, timeout=30) if self._endpoint is not None else "not started"
        if reason is None and self._endpoint is not None:
            return self._endpoint
        if self.restarts >= self.max_restarts:
            raise ServerError(f"server restarted {self.restarts} times already; giving up ({reason})")
        log.warning("server not answering (%s): restarting it", reason)
        self.restarts += 1
        self._stop()
        return self._start()

    def __enter__(self) -> ManagedServer:
        self._start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop()
