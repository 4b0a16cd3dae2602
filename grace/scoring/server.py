"""The server path: option log-probabilities from vLLM's /v1/completions, by token id.

`score_trie` (path "server"): one next-token read per node of the options' token trie: the prompt (plus an
option prefix) is sent as token ids with max_tokens 1, temperature 0 and `logprob_token_ids` (vLLM's
full-vocabulary log-probabilities of exactly the listed tokens). Single-token options cost one request per
question. These reads ask for no prompt log-probabilities, so vLLM's prefix cache serves the shared prompt:
the root read goes first, the deeper reads follow together.

`score_per_option` (path "per-option", the lm-evaluation-harness way): one request per option with the
option appended to the prompt and `prompt_logprobs`, reading each option token's log-probability. vLLM skips
the prefix cache for requests with prompt log-probabilities, so every option recomputes the prompt.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx

from grace.client import RequestFailed, post_json
from grace.config import Retry
from grace.scoring.errors import ScoringError
from grace.scoring.logprobs import gather_from_nodes, trie_nodes
from grace.scoring.tokenize import EncodedQuestion
from grace.serving.base import Endpoint

_OVERFLOW = re.compile(r"maximum context length|context length|too long|max_model_len|exceeds", re.I)
_TOKEN_KEY = re.compile(r"^token_id:(-?\d+)$")


class Counter:
    """Requests sent (retries included) for one trial."""

    def __init__(self) -> None:
        self.requests = 0


def _failure(e: RequestFailed) -> ScoringError:
    if e.status_code == 400 and _OVERFLOW.search(str(e)):
        return ScoringError("context_overflow", f"context overflow: {e}", e.attempts)
    if e.status_code is not None and 400 <= e.status_code < 500:
        return ScoringError("rejected", str(e), e.attempts)
    return ScoringError("error", str(e), e.attempts)


async def _post(client: httpx.AsyncClient, endpoint: Endpoint, payload: dict[str, Any], retry: Retry,
                counter: Counter) -> dict[str, Any]:
    try:
        posted = await post_json(client, f"{endpoint.v1}/completions", {"model": endpoint.model, **payload}, retry)
    except RequestFailed as e:
        counter.requests += e.attempts
        raise _failure(e) from None
    counter.requests += posted.attempts
    return posted.data


def parse_next_token(data: dict[str, Any], wanted: list[int]) -> dict[int, float]:
    """The requested tokens' log-probabilities from a completion answered with `return_tokens_as_token_ids`."""
    choice = (data.get("choices") or [{}])[0]
    tops = ((choice.get("logprobs") or {}).get("top_logprobs") or [None])[0]
    if not tops:
        raise ScoringError("no_logprobs", "the server returned no log-probabilities (top_logprobs empty)")
    out: dict[int, float] = {}
    for key, value in tops.items():
        m = _TOKEN_KEY.match(key)
        if not m:
            raise ScoringError("no_logprobs", f"log-probabilities keyed by text ({key!r}), not by token id")
        out[int(m.group(1))] = float(value)
    missing = [t for t in wanted if t not in out]
    if missing:
        raise ScoringError("no_logprobs", f"the server returned no log-probability for tokens {missing}")
    return {t: out[t] for t in wanted}


def parse_prompt_logprobs(data: dict[str, Any], start: int, ids: list[int]) -> list[float]:
    """Log-probabilities of prompt tokens start.. (the option's tokens) from `prompt_logprobs` (keyed by id)."""
    choice = (data.get("choices") or [{}])[0]
    rows = choice.get("prompt_logprobs")
    if not rows or len(rows) < start + len(ids):
        raise ScoringError("no_logprobs", "the server returned no prompt log-probabilities "
                                          f"({0 if not rows else len(rows)} rows, need {start + len(ids)})")
    out = []
    for i, tok in enumerate(ids):
        row = rows[start + i] or {}
        entry = row.get(str(tok))
        if entry is None:
            raise ScoringError("no_logprobs", f"no prompt log-probability for token {tok} at position {start + i}")
        out.append(float(entry["logprob"]))
    return out


async def score_trie(client: httpx.AsyncClient, endpoint: Endpoint, q: EncodedQuestion, retry: Retry,
                     counter: Counter) -> dict[str, list[float]]:
    """Each option's per-token log-probabilities from one next-token read per trie node."""
    nodes = trie_nodes(q.option_ids)

    async def read(prefix: tuple[int, ...], children: list[int]) -> tuple[tuple[int, ...], dict[int, float]]:
        payload = {"prompt": [*q.prompt_ids, *prefix], "max_tokens": 1, "temperature": 0, "logprobs": 1,
                   "logprob_token_ids": children, "return_tokens_as_token_ids": True}
        return prefix, parse_next_token(await _post(client, endpoint, payload, retry, counter), children)

    items = list(nodes.items())
    first = await read(*items[0])  # the root: fills the prefix cache for the deeper reads
    rest = await asyncio.gather(*(read(p, c) for p, c in items[1:]))
    return gather_from_nodes(q.option_ids, dict([first, *rest]))


async def score_per_option(client: httpx.AsyncClient, endpoint: Endpoint, q: EncodedQuestion, retry: Retry,
                           counter: Counter) -> dict[str, list[float]]:
    """Each option's per-token log-probabilities from one prompt_logprobs request per option."""
    start = len(q.prompt_ids)

    async def one(opt: str) -> tuple[str, list[float]]:
        ids = q.option_ids[opt]
        payload = {"prompt": [*q.prompt_ids, *ids], "max_tokens": 1, "temperature": 0, "prompt_logprobs": 0}
        return opt, parse_prompt_logprobs(await _post(client, endpoint, payload, retry, counter), start, ids)

    return dict(await asyncio.gather(*(one(o) for o in q.options)))
