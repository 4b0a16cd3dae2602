"""The server path: option log-probabilities from vLLM's /v1/completions, by token id.

`score_trie` (path "server"): one next-token read per node of the options' token tries, for every question of
a trial at once: each read is the prompt (plus an option prefix) as token ids with max_tokens 1, temperature 0
and `logprob_token_ids` (vLLM's full-vocabulary log-probabilities of exactly the listed tokens), and the reads
travel as one prompt list per request (the completions API's batch form), so a trial costs one request per
wave, not one per node: the roots of every question first (single-token options need nothing more), then
every deeper node together. The reads ask for no prompt log-probabilities, so vLLM's prefix cache serves the
shared prompt to the second wave. HTTP and scheduling per request, not compute, dominated small models: a
request per node ran at 0.3-0.6x in-process scoring on the toy model, a request per wave at 1.3-2.5x.

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

MAX_TOKEN_IDS = 128  # vLLM's bound on one request's logprob_token_ids (sampling_params.MAX_LOGPROB_TOKEN_IDS)
_OVERFLOW = re.compile(r"maximum context length|context length|too long|max_model_len|exceeds", re.I)
_TOKEN_KEY = re.compile(r"^token_id:(-?\d+)$")


class Counter:
    """Requests sent (retries included) and prompts read (one generated token each) for one trial."""

    def __init__(self) -> None:
        self.requests = 0
        self.reads = 0


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


def parse_choice(choice: dict[str, Any], wanted: list[int]) -> dict[int, float]:
    """One choice's log-probabilities of `wanted` (token ids) at its one generated position."""
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


def choices_in_order(data: dict[str, Any], n: int) -> list[dict[str, Any]]:
    """A batched completion's choices in prompt order (by `index`); exactly one per prompt."""
    choices = data.get("choices") or []
    by_index = {c.get("index"): c for c in choices}
    if len(choices) != n or sorted(by_index) != list(range(n)):
        raise ScoringError("no_logprobs", f"the server answered {len(choices)} choices for {n} prompts")
    return [by_index[i] for i in range(n)]


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


Read = tuple[int, tuple[int, ...], list[int]]  # (question index, option-token prefix, tokens that follow it)


def waves(tries: list[dict[tuple[int, ...], list[int]]]) -> list[list[list[Read]]]:
    """The reads of one trial as requests: wave 1 the roots, wave 2 every deeper node; a wave splits into
    several requests only where its reads would ask for more than MAX_TOKEN_IDS distinct tokens."""
    out = []
    for deep in (False, True):
        reads = [(i, p, c) for i, nodes in enumerate(tries) for p, c in nodes.items() if bool(p) == deep]
        groups: list[list[Read]] = []
        ids: set[int] = set()
        for r in reads:
            if not groups or len(ids | set(r[2])) > MAX_TOKEN_IDS:
                groups.append([])
                ids = set()
            groups[-1].append(r)
            ids |= set(r[2])
        if groups:
            out.append(groups)
    return out


async def score_trie(client: httpx.AsyncClient, endpoint: Endpoint, questions: list[EncodedQuestion], retry: Retry,
                     counter: Counter) -> list[dict[str, list[float]]]:
    """Every question's per-option token log-probabilities from its trie's next-token reads, batched."""
    tries = [trie_nodes(q.option_ids) for q in questions]
    got: list[dict[tuple[int, ...], dict[int, float]]] = [{} for _ in questions]

    async def send(group: list[Read]) -> None:
        ids = sorted({t for _, _, children in group for t in children})
        payload = {"prompt": [[*questions[i].prompt_ids, *prefix] for i, prefix, _ in group], "max_tokens": 1,
                   "temperature": 0, "logprobs": 1, "logprob_token_ids": ids, "return_tokens_as_token_ids": True}
        data = await _post(client, endpoint, payload, retry, counter)
        counter.reads += len(group)
        for (i, prefix, children), choice in zip(group, choices_in_order(data, len(group)), strict=True):
            got[i][prefix] = parse_choice(choice, children)

    for wave in waves(tries):  # the roots fill the prefix cache before the deeper reads
        await asyncio.gather(*(send(g) for g in wave))
    return [gather_from_nodes(q.option_ids, g) for q, g in zip(questions, got, strict=True)]


async def score_per_option(client: httpx.AsyncClient, endpoint: Endpoint, q: EncodedQuestion, retry: Retry,
                           counter: Counter) -> dict[str, list[float]]:
    """Each option's per-token log-probabilities from one prompt_logprobs request per option."""
    start = len(q.prompt_ids)

    async def one(opt: str) -> tuple[str, list[float]]:
        ids = q.option_ids[opt]
        payload = {"prompt": [*q.prompt_ids, *ids], "max_tokens": 1, "temperature": 0, "prompt_logprobs": 0}
        data = await _post(client, endpoint, payload, retry, counter)
        counter.reads += 1
        return opt, parse_prompt_logprobs(data, start, ids)

    return dict(await asyncio.gather(*(one(o) for o in q.options)))
