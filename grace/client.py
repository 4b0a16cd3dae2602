"""Async HTTP to an OpenAI-compatible server, with retries on what is worth retrying.

Retried with exponential backoff and jitter: connection errors, timeouts, dropped connections, 429 and 5xx.
Not retried: other 4xx (a bad request stays bad). The attempt count is returned for the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from grace.config import Retry


class RequestFailed(Exception):
    """A request that failed for good; `attempts` says how many tries were made."""

    def __init__(self, message: str, attempts: int, status_code: int | None = None) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.status_code = status_code


def retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        code = exc.response.status_code
        return code == 429 or code >= 500
    return isinstance(exc, httpx.TransportError)  # connect/read errors, timeouts, dropped connections


@dataclass(frozen=True)
class Posted:
    data: dict[str, Any]
    attempts: int


def make_client(concurrency: int, retry: Retry, api_key: str | None = None) -> httpx.AsyncClient:
    """A pooled client for `concurrency` requests in flight; `api_key`, if any, goes as a bearer token."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(retry.request_timeout_s, connect=min(10.0, retry.request_timeout_s))
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    return httpx.AsyncClient(limits=limits, timeout=timeout, headers=headers)


async def post_json(client: httpx.AsyncClient, url: str, payload: dict[str, Any], retry: Retry) -> Posted:
    attempts = 0
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(retry.attempts),
            wait=wait_exponential_jitter(multiplier=retry.backoff_initial_s, max=retry.backoff_max_s),
            retry=retry_if_exception(retryable),
            reraise=True,
        ):
            with attempt:
                attempts = attempt.retry_state.attempt_number
                r = await client.post(url, json=payload)
                r.raise_for_status()
                return Posted(r.json(), attempts)
    except httpx.HTTPStatusError as e:
        body = e.response.text[:300].replace("\n", " ")
        raise RequestFailed(f"HTTP {e.response.status_code}: {body}", attempts, e.response.status_code) from e
    except httpx.HTTPError as e:
        raise RequestFailed(f"{type(e).__name__}: {e}".strip(), attempts) from e
    except ValueError as e:  # a 200 whose body is not JSON
        raise RequestFailed(f"invalid JSON in response: {e}", attempts) from e
    raise AssertionError("unreachable")
