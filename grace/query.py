"""Experiment 1: free-text answers through /v1/chat/completions, async, bounded, resumable.

Each (trial, replicate) becomes one request; results are appended to the JSONL checkpoint as they arrive, so
a re-run skips what is done and a crash loses at most the requests in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from grace.chat import adapt, versioned
from grace.checkpoint import Checkpoint, LoadReport, write_table
from grace.client import RequestFailed, make_client, post_json
from grace.config import ExperimentConfig
from grace.progress import Progress
from grace.records import Exp1Record, now
from grace.serving.base import Endpoint, in_flight
from grace.serving.watch import Gate
from grace.studies import Study, Trial
from grace.watched import drain_watched, settle


@dataclass
class StageResult:
    """What one stage did: counts for the flow's artifact and the closing notes."""

    study: str
    experiment: str
    checkpoint: Path
    total: int
    skipped: int = 0  # done before this call (resume)
    ok: int = 0
    failed: int = 0
    other: dict[str, int] = field(default_factory=dict)  # e.g. truncated, empty
    sent: int = 0  # requests sent in this call, retries included
    concurrency: int = 0  # requests (Exp 1) or trials (Exp 2) kept in flight; 0: not a server stage
    wall_s: float = 0.0
    tables: list[Path] = field(default_factory=list)
    load_report: LoadReport | None = None
    waits: list[dict[str, Any]] = field(default_factory=list)  # this call's pauses for the server (watch.Wait)

    @property
    def waited_s(self) -> float:
        return sum(float(w["waited_s"]) for w in self.waits)

    @property
    def rps(self) -> float:
        done = self.total - self.skipped
        return done / self.wall_s if self.wall_s > 0 else 0.0


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


def classify(response: str | None, finish_reason: str | None, reasoning: str | None = None) -> str:
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


async def _query_one(client: Any, endpoint: Endpoint, study: Study, exp: ExperimentConfig, trial: Trial,
                     replicate: int) -> Exp1Record:
    messages = adapt(study.exp1_messages(trial), endpoint.chat_form)
    sampling = sampling_payload(exp, replicate, endpoint)
    started = now()
    t0 = time.perf_counter()
    base = {
        "trial_id": trial["trial_id"], "replicate": replicate, "model": endpoint.model,
        "model_revision": endpoint.revision, "study": study.name,
        "prompt_version": versioned(study.prompt_version, endpoint.chat_form),
        "messages": messages, "sampling": {**exp.sampling.model_dump(), **sampling}, "started_at": started,
    }
    try:
        posted = await post_json(client, f"{endpoint.v1}/chat/completions",
                                 {"model": endpoint.model, "messages": messages, **sampling}, exp.retry)
    except RequestFailed as e:
        return Exp1Record(**base, status="error", error=str(e), attempts=e.attempts,
                          latency_s=time.perf_counter() - t0)
    data = posted.data
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    text = message.get("content")
    reasoning = reasoning_of(message)
    usage = data.get("usage") or {}
    finish = choice.get("finish_reason")
    return Exp1Record(
        **base, status=classify(text, finish, reasoning), attempts=posted.attempts,
        served_model=data.get("model", ""), response=text, finish_reason=finish,
        prompt_tokens=usage.get("prompt_tokens"), completion_tokens=usage.get("completion_tokens"),
        reasoning=reasoning, reasoning_tokens=(usage.get("completion_tokens_details") or {}).get("reasoning_tokens"),
        latency_s=time.perf_counter() - t0,
    )


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
    out_dir = Path(out_dir)
    ckpt: Checkpoint[Exp1Record] = Checkpoint(out_dir / "exp1.jsonl", Exp1Record)
    done = ckpt.done_keys()
    reps = exp.sampling.replications
    result = StageResult(study.name, "exp1", ckpt.path, total=len(trials) * reps, load_report=ckpt.report)
    todo: Iterator[tuple[Trial, int]] = (
        (t, r) for t in trials for r in range(reps) if f"{t['trial_id']}#{r}" not in done
    )
    result.skipped = len(done & {f"{t['trial_id']}#{r}" for t in trials for r in range(reps)})
    if progress and result.skipped:
        progress(result.skipped, resumed=True)
    n = in_flight(endpoint, exp.concurrency, concurrency)
    result.concurrency = n
    gate = Gate(endpoint)
    t0 = time.perf_counter()
    async with make_client(n, exp.retry, gate=gate, api_key=endpoint.api_key) as client:
        with ckpt:

            async def handle(item: tuple[Trial, int]) -> None:
                rec = await _query_one(client, endpoint, study, exp, *item)
                ckpt.append(rec)
                result.sent += rec.attempts
                if progress:
                    progress(1)

            stopped = await drain_watched(gate, todo, n, handle)
    result.wall_s = time.perf_counter() - t0
    finish_exp1(study, trials, out_dir, result)
    settle(gate, result, out_dir, stopped)
    return result


def finish_exp1(study: Study, trials: list[Trial], out_dir: Path, result: StageResult) -> None:
    """Count statuses over the whole checkpoint and write the tidy table (input columns + response)."""
    records = Checkpoint(out_dir / "exp1.jsonl", Exp1Record).load()
    keep = {t["trial_id"] for t in trials}
    rows = []
    by_id = {t["trial_id"]: t for t in trials}
    counts: dict[str, int] = {}
    for rec in records.values():
        if rec.trial_id not in keep:
            continue
        counts[rec.status] = counts.get(rec.status, 0) + 1
        row = dict(by_id[rec.trial_id])
        row.update(study.condition(by_id[rec.trial_id]))
        row.update(rec.model_dump(mode="json", exclude={"messages", "sampling", "trial_id"}))
        row["trial_id"] = rec.trial_id
        row["temperature"] = rec.sampling.get("temperature")
        row["max_tokens"] = rec.sampling.get("max_tokens")
        rows.append(row)
    order = {t["trial_id"]: i for i, t in enumerate(trials)}
    rows.sort(key=lambda r: (order[r["trial_id"]], r["replicate"]))
    result.ok = counts.pop("ok", 0)
    result.failed = counts.pop("error", 0)
    result.other = counts
    result.tables = write_table(pd.DataFrame(rows), out_dir / "exp1")


def run_exp1_sync(*args: Any, **kwargs: Any) -> StageResult:
    return asyncio.run(run_exp1(*args, **kwargs))
