"""The stage's request gate: one per stage, it pauses the stage's requests while the server is away and stops
the stage, with the reason, when the server is gone or rejects the stage's first requests alike.

When a request's connection fails (refused, reset, dropped before an answer), the request does not burn its
retries: it reports to the stage's `Gate` and waits. One coordinator per outage asks the backend's `Watch`,
every `poll_s`, what state the server is in (the backends' watches: grace.serving.watch):

- **up** at the first look: the failure was a blip; the request counts it as an ordinary failed attempt.
- **down** (not answering, maybe restarting: a pod restarting, an external endpoint unreachable): every request
  waits, none is sent, until the server answers its readiness probe again (then they all resume, and the
  failed sends do not use up attempts) or until `restart_timeout_s` (the backend's start timeout) has passed.
- **gone** for good (the local process exited, the Deployment was deleted, the pod crash-loops): the stage
  stops at once with the reason (`ServerLost`); requests in flight and rows not yet sent get no record, so a
  rerun asks them (nothing is recorded as `error` for a row the server never answered).

The gate also stops a stage whose first requests are all rejected with the same HTTP 4xx (`RequestsRejected`,
e.g. every Exp 1 request answered 400 "System role not supported"): after `FAIL_FAST_AFTER` identical
rejections and no answer, nothing more is sent. So that "first" means a few rather than a whole batch of
in-flight requests, only `FAIL_FAST_AFTER` requests go out before the stage's first answer; the others wait
for it (or for those few to settle without one), then the stage runs at its full concurrency.

Each pause is kept as a `ServerWait` record (grace.records: why, how long, how it ended) for the stage's
summary, the flow's artifact and the report (`<model>/<study>/server-waits.jsonl`, grace.server_waits).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from datetime import UTC, datetime

from grace.errors import ServerError
from grace.records import ServerWait
from grace.serving.base import Endpoint, Health, Watch
from grace.serving.watch import HealthWatch
from grace.statuses import WaitOutcome

log = logging.getLogger(__name__)

FAIL_FAST_AFTER = 5  # identical 4xx rejections, with no answer before them, that stop a stage


# -- why a stage stopped ---------------------------------------------------------------------------------

class StageStopped(ServerError):
    """A stage stopped early because of its server; rows not answered have no record, a rerun resumes."""

    def __init__(self, reason: str, message: str | None = None) -> None:
        super().__init__(message or reason)
        self.reason = reason

    def after(self, done: int, total: int) -> StageStopped:
        """The same stop, its message saying how far the stage got."""
        return type(self)(self.reason, f"{self.reason} after {done:,} of {total:,} rows; a rerun resumes")


class ServerLost(StageStopped):
    """The server is gone for good (or did not come back in time)."""


class RequestsRejected(StageStopped):
    """The server rejected the stage's first requests alike (HTTP 4xx): asking the rest would fail the same way,
    and so would a retry of the stage with the same settings."""

    def after(self, done: int, total: int) -> StageStopped:
        return type(self)(self.reason, f"{self.reason}; stopped with {done:,} of {total:,} rows done, the rest not "
                                       "sent; fix the cause and rerun (the failed rows are redone)")


# -- one stage's gate ------------------------------------------------------------------------------------

def server_message(body: str) -> str:
    """The server's own error message from an error body (vLLM: {"error": {"message": ...}} or {"message": ...})."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:300]
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
        if data.get("message"):
            return str(data["message"])[:300]
        if isinstance(err, str):
            return err[:300]
    return body.strip()[:300]


class Gate:
    """Shared by every request of one stage (it travels on the stage's HTTP client, grace.client.make_client).

    A request calls `admit()` once before it starts and `settled()` when it ends; `ready()` before each send,
    `outage(exc)` when a connection fails, `answered()` on a 2xx and `rejected(code, body)` on a final 4xx.
    Runs inside one event loop; only the backend's `check` runs in a thread.
    """

    def __init__(self, endpoint: Endpoint, watch: Watch | None = None, *, fail_fast: int = FAIL_FAST_AFTER) -> None:
        self.endpoint = endpoint
        self.watch: Watch = watch or endpoint.watch or HealthWatch()
        self.fail_fast = fail_fast
        self.waits: list[ServerWait] = []
        self.stopped: StageStopped | None = None
        self.answers = 0
        self._rejections: list[tuple[int, str]] = []
        self._episode: asyncio.Future[bool] | None = None
        self._coordinator: asyncio.Task[None] | None = None
        self._paused = 0
        self._admitted = 0  # requests let out before the first answer
        self._settled = 0  # of those, ended without an answer
        self.confirmed = asyncio.Event()  # set by the first answer, the stop, or the first few settling without one

    def _stop(self, error: StageStopped) -> None:
        if self.stopped is None:
            self.stopped = error
            self.confirmed.set()
            log.error("stage stopped: %s", error)

    async def admit(self) -> None:
        """Before a request: until the stage's first answer, only the first `fail_fast` requests go out."""
        if not self.confirmed.is_set():
            if self._admitted < self.fail_fast:
                self._admitted += 1
            else:
                await self.confirmed.wait()
        await self.ready()

    def settled(self) -> None:
        """A request ended (answered or not). When the first few all ended without an answer and without
        stopping the stage (their rejections differ: each row's own), the others go out too."""
        if self.answers == 0:
            self._settled += 1
            if self._settled >= self.fail_fast:
                self.confirmed.set()

    async def ready(self) -> None:
        """Before a send: wait out an outage in progress; raise the stop if the stage has stopped."""
        if self._episode is not None:
            self._paused += 1
            await asyncio.shield(self._episode)
        if self.stopped is not None:
            raise self.stopped

    async def outage(self, exc: BaseException) -> bool:
        """A send's connection failed. True: the server was away and is back (send again, no attempt used);
        False: it is up (an ordinary failed attempt). Raises the stop when the server is gone."""
        if self.stopped is not None:
            raise self.stopped
        if self._episode is None:
            self._episode = asyncio.get_running_loop().create_future()
            self._coordinator = asyncio.create_task(self._coordinate(exc))
        self._paused += 1
        was_away = await asyncio.shield(self._episode)
        if self.stopped is not None:
            raise self.stopped
        return was_away

    async def _coordinate(self, first: BaseException) -> None:
        t0 = time.monotonic()
        started = datetime.now(UTC).isoformat(timespec="seconds")
        timeout = self.watch.restart_timeout_s
        away, reason = False, ""
        outcome: WaitOutcome = "back"
        try:
            while True:
                try:
                    health = await asyncio.to_thread(self.watch.check, self.endpoint)
                except Exception as e:  # noqa: BLE001 - a watch must not raise; if it does, keep waiting
                    health = Health("down", f"cannot check the server: {type(e).__name__}: {e}")
                if health.state == "up":
                    break
                if health.state == "gone":
                    reason, outcome = health.reason, "lost"
                    self._stop(ServerLost(health.reason))
                    break
                if not away:
                    away, reason = True, health.reason
                    log.warning("server %s away (%s: %s): requests paused, waiting up to %.0f s for it",
                                self.endpoint.base_url, type(first).__name__, health.reason, timeout)
                if time.monotonic() - t0 >= timeout:
                    outcome = "lost"
                    reason = f"the server did not come back within {timeout:.0f} s ({health.reason})"
                    self._stop(ServerLost(reason))
                    break
                await asyncio.sleep(self.watch.poll_s)
        finally:
            waited = time.monotonic() - t0
            if away or outcome != "back":
                self.waits.append(ServerWait(outcome=outcome, reason=reason, waited_s=round(waited, 2),
                                             paused=self._paused, started_at=started))
                if outcome == "back":
                    log.warning("server %s back after %.1f s: %d paused requests resume", self.endpoint.base_url,
                                waited, self._paused)
            fut, self._episode, self._paused = self._episode, None, 0
            if fut is not None and not fut.done():
                fut.set_result(away)

    def answered(self) -> None:
        self.answers += 1
        self.confirmed.set()

    def rejected(self, status_code: int, body: str) -> StageStopped | None:
        """A request failed for good with a 4xx. Returns the stop once the first `fail_fast` requests, with no
        answer among them, were all rejected alike (digits aside: lengths and counts vary per request)."""
        if self.stopped is not None:
            return self.stopped
        if self.answers or status_code == 429 or len(self._rejections) >= self.fail_fast:
            return None
        message = server_message(body)
        self._rejections.append((status_code, re.sub(r"\d+", "#", message)))
        if len(self._rejections) == self.fail_fast and len(set(self._rejections)) == 1:
            reason = (f"the server rejected each of the first {self.fail_fast} requests with HTTP {status_code}: "
                      f"{message}")
            self.waits.append(ServerWait(outcome="rejected", reason=reason, waited_s=0.0, paused=0,
                                         started_at=datetime.now(UTC).isoformat(timespec="seconds")))
            self._stop(RequestsRejected(reason))
        return self.stopped

    @property
    def unconfirmed(self) -> bool:
        """No request of this stage has been answered yet (a 4xx now may be the whole stage's, not the row's)."""
        return self.answers == 0

    async def aclose(self) -> None:
        if self._coordinator is not None and not self._coordinator.done():
            self._coordinator.cancel()
