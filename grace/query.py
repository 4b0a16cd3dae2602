"""Experiment 1: free-text answers through /v1/chat/completions, async, bounded, resumable.

Each (trial, replicate) becomes one request; results are appended to the JSONL checkpoint as they arrive, so
a re-run skips what is done and a crash loses at most the requests in flight.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from grace.chat import adapt, versioned
from grace.client import RequestFailed, post_json
from grace.config import ExperimentConfig
from grace.progress import Progress
from grace.records import Exp1Record, now
from grace.serving.base import Endpoint, in_flight
from grace.stage import ServedStage, StageResult, input_columns, run_served
from grace.statuses import Exp1Status
from grace.studies import Study, Trial


def sampling_payload(exp: ExperimentConfig, replicate: int, endpoint: Endpoint | None = None) -> dict[str, Any]:
    """The request's sampling fields; a reasoning model gets its reasoning effort and a budget for both parts."""
    s = exp.sampling
    payload: dict[str, Any] = {"temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens}
    if s.per_request_seed and s.seed is not None:
        payload["seed"] = s.seed + replicate
    reasoning = endpoint.reasoning if endpoint else None
    if reasoning is not None:
        payload["reasoning_effort"] = reasoning.effort
        payload["max_tokens"] = max(s.max_tokens, reasoning.max_tokens)
    if endpoint is not None and endpoint.stop_token_ids:  # e.g. Llama-3's <|eot_id|> where the checkpoint's
        payload["stop_token_ids"] = list(endpoint.stop_token_ids)  # generation config lacks it
    return payload


def classify(response: str | None, finish_reason: str | None, reasoning: str | None = None) -> Exp1Status:
    """ok, or why the reply is not an answer: empty, truncated (cut by max_tokens), or reasoning_truncated (the
    budget ran out during the reasoning, before any final answer)."""
    if response is None or not response.strip():
        return "reasoning_truncated" if finish_reason == "length" and reasoning else "empty"
    if finish_reason == "length":
        return "truncated"
    return "ok"


def reasoning_of(message: dict[str, Any]) -> str | None:
    """The reasoning text of a chat reply: `reasoning` (newer vLLM) or `reasoning_content` (older)."""
    return message.get("reasoning") or message.get("reasoning_content") or None


async def _query_one(client: httpx.AsyncClient, endpoint: Endpoint, study: Study, exp: ExperimentConfig, trial: Trial,
                     replicate: int) -> Exp1Record:
    messages = adapt(study.exp1_messages(trial), endpoint.chat_form)
    sampling = sampling_payload(exp, replicate, endpoint)
    started = now()
    t0 = time.perf_counter()
    record = partial(  # what every outcome's record carries
        Exp1Record, trial_id=trial["trial_id"], replicate=replicate, model=endpoint.model,
        model_revision=endpoint.revision, study=study.name,
        prompt_version=versioned(study.prompt_version, endpoint.chat_form),
        messages=messages, sampling={**exp.sampling.model_dump(), **sampling}, started_at=started,
    )
    try:
        posted = await post_json(client, f"{endpoint.v1}/chat/completions",
                                 {"model": endpoint.model, "messages": messages, **sampling}, exp.retry)
    except RequestFailed as e:
        return record(status="error", error=str(e), attempts=e.attempts, latency_s=time.perf_counter() - t0)
    data = posted.data
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    text = message.get("content")
    reasoning = reasoning_of(message)
    usage = data.get("usage") or {}
    finish = choice.get("finish_reason")
    return record(
        status=classify(text, finish, reasoning), attempts=posted.attempts,
        served_model=data.get("model", ""), response=text, finish_reason=finish,
        prompt_tokens=usage.get("prompt_tokens"), completion_tokens=usage.get("completion_tokens"),
        reasoning=reasoning, reasoning_tokens=(usage.get("completion_tokens_details") or {}).get("reasoning_tokens"),
        latency_s=time.perf_counter() - t0,
    )


class Exp1Stage(ServedStage[tuple[Trial, int], Exp1Record]):
    """Exp 1 in the stage skeleton (grace.stage): one chat request per trial x replicate."""

    experiment = "exp1"
    file = "exp1.jsonl"
    record_type = Exp1Record

    def __init__(self, endpoint: Endpoint, study: Study, trials: list[Trial], exp: ExperimentConfig) -> None:
        super().__init__(study.name)
        self.endpoint, self.study, self.trials, self.exp = endpoint, study, trials, exp
        self.by_id = {t["trial_id"]: t for t in trials}

    def items(self) -> list[tuple[Trial, int]]:
        return [(t, r) for t in self.trials for r in range(self.exp.sampling.replications)]

    def key(self, item: tuple[Trial, int]) -> str:
        return f"{item[0]['trial_id']}#{item[1]}"

    async def record(self, client: httpx.AsyncClient, item: tuple[Trial, int]) -> Exp1Record:
        return await _query_one(client, self.endpoint, self.study, self.exp, *item)

    def rows(self, record: Exp1Record) -> list[dict[str, Any]]:
        """The input columns, the design cell, then the record (without what was sent) and its sampling."""
        trial = self.by_id[record.trial_id]
        own = record.model_dump(mode="json", exclude={"messages", "sampling", "trial_id"})
        sampling = {"temperature": record.sampling.get("temperature"), "max_tokens": record.sampling.get("max_tokens")}
        row: dict[str, Any] = {**input_columns(trial, {*own, *sampling}), **self.study.condition(trial)}
        row.update(own)
        row["trial_id"] = record.trial_id
        row.update(sampling)
        return [row]


async def run_exp1(
    endpoint: Endpoint,
    study: Study,
    trials: list[Trial],
    exp: ExperimentConfig,
    out_dir: Path,
    *,
    concurrency: int | None = None,
    progress: Progress | None = None,
) -> StageResult:
    """Every trial x replicate into out_dir/exp1.jsonl (resumed), then the tidy table exp1.parquet / .csv."""
    n = in_flight(endpoint, exp.concurrency, concurrency)
    return await run_served(Exp1Stage(endpoint, study, trials, exp), endpoint, out_dir, concurrency=n,
                            retry=exp.retry, progress=progress)


def run_exp1_sync(*args: Any, **kwargs: Any) -> StageResult:
    return asyncio.run(run_exp1(*args, **kwargs))
