"""Async HTTP to an OpenAI-compatible server, with retries on what is worth retrying.

Retried with exponential backoff and jitter: connection errors, timeouts, dropped connections, 429 and 5xx.
Not retried: other 4xx (a bad request stays bad). The attempt count (requests sent) is returned for the record.

A client made with a stage's gate (grace.serving.gate.Gate) does not burn retries on a server that is away:
a failed connection pauses the request at the gate until the server is back (the request is sent again and
the failed sends use up no attempt) or gone (the gate's stop is raised, and the row gets no record). The gate
also sees every answer and every final 4xx, so it can stop a stage whose first requests are all rejected alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from grace.config import Retry

# A failed connection, as opposed to a slow answer (a read timeout is an ordinary retry): refused, reset,
# closed before an answer, or no TCP connection within the connect timeout.
CONNECTION_ERRORS = (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ConnectTimeout)


class RequestFailed(Exception):
    """A request that failed for good; `attempts` says how many tries were made."""

    def __init__(self, message: str, attempts: int, status_code: int | None = None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.status_code = status_code


class RequestGate(Protocol):
    """What post_json needs from a stage's gate (grace.serving.gate.Gate)."""

    async def admit(self) -> None: ...

    def settled(self) -> None: ...

    async def ready(self) -> None: ...

    async def outage(self, exc: BaseException) -> bool: ...

    def answered(self) -> None: ...

    def rejected(self, status_code: int, body: str) -> Exception | None: ...


def retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        code = exc.response.status_code
        return code == 429 or code >= 500
    return isinstance(exc, httpx.TransportError)  # connect/read errors, timeouts, dropped connections


@dataclass(frozen=True)
class Posted:
    data: dict[str, Any]
    attempts: int


class StageClient(httpx.AsyncClient):
    """An httpx.AsyncClient that carries its stage's gate (None: plain retries, as for one-off requests)."""

    def __init__(self, *, gate: RequestGate | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = gate


def make_client(concurrency: int, retry: Retry, gate: RequestGate | None = None, api_key: str | None = None
                ) -> httpx.AsyncClient:
    """A pooled client for `concurrency` requests in flight, under the stage's `gate`; `api_key`, if any, goes as
    a bearer token."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(retry.request_timeout_s, connect=min(10.0, retry.request_timeout_s))
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    return StageClient(gate=gate, limits=limits, timeout=timeout, headers=headers)


async def post_json(client: httpx.AsyncClient, url: str, payload: dict[str, Any], retry: Retry, *,
                    confirms: bool = True) -> Posted:
    """POST with retries. `confirms=False` marks a helper request (a prompt's rendering through /tokenize): it
    waits out outages and its 4xx counts toward the gate's fail-fast, but its answer does not confirm that the
    stage's own requests are accepted, nor does it take one of the first few places the gate lets out."""
    gate: RequestGate | None = getattr(client, "gate", None)
    counted = gate if confirms else None
    sent = 0

    async def send() -> httpx.Response:
        nonlocal sent
        while True:
            if gate is not None:
                await gate.ready()
            sent += 1
            try:
                return await client.post(url, json=payload)
            except CONNECTION_ERRORS as e:
                if gate is None or not await gate.outage(e):
                    raise  # no gate, or the server is up: an ordinary failed attempt

    if counted is not None:
        await counted.admit()
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(retry.attempts),
            wait=wait_exponential_jitter(multiplier=retry.backoff_initial_s, max=retry.backoff_max_s),
            retry=retry_if_exception(retryable),
            reraise=True,
        ):
            with attempt:
                r = await send()
                r.raise_for_status()
                data = r.json()
                if counted is not None:
                    counted.answered()
                return Posted(data, sent)
    except httpx.HTTPStatusError as e:
        code = e.response.status_code
        if gate is not None and 400 <= code < 500:
            stop = gate.rejected(code, e.response.text)
            if stop is not None:
                raise stop from None
        body = e.response.text[:300].replace("\n", " ")
        raise RequestFailed(f"HTTP {code}: {body}", sent, code) from e
    except httpx.HTTPError as e:
        raise RequestFailed(f"{type(e).__name__}: {e}".strip(), sent) from e
    except ValueError as e:  # a 200 whose body is not JSON
        raise RequestFailed(f"invalid JSON in response: {e}", sent) from e
    finally:
        if counted is not None:
            counted.settled()
    raise AssertionError("unreachable")
