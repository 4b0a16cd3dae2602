"""A model's server kept up across its stages: a dead server is restarted before the next attempt."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType

from grace.errors import ServerError
from grace.serving.base import Endpoint, probe

log = logging.getLogger(__name__)
Backend = AbstractContextManager[Endpoint]


class ManagedServer:
    """Context manager around a backend factory; `ensure_alive()` restarts the server if it stopped answering."""

    def __init__(self, factory: Callable[[], Backend], max_restarts: int = 3) -> None:
        self.factory = factory
        self.max_restarts = max_restarts
        self.restarts = 0
        self._backend: Backend | None = None
        self._endpoint: Endpoint | None = None

    @property
    def endpoint(self) -> Endpoint:
        if self._endpoint is None:
            raise ServerError("server not started")
        return self._endpoint

    def _start(self) -> Endpoint:
        self._backend = self.factory()
        self._endpoint = self._backend.__enter__()
        return self._endpoint

    def _stop(self) -> None:
        backend, self._backend, self._endpoint = self._backend, None, None
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
