"""The LLM stage: what the rules left missing, read by a model under vLLM structured outputs (JSON schema).

The request carries `structured_outputs: {"json": schema}` (vLLM's field; the older `guided_json` is silently
ignored), so the reply is JSON of the schema's shape; it is parsed with `json.loads(strict=False)` because
constrained strings may hold raw control characters. The LLM only fills fields the rules found *absent*, and a
value is kept only if it is grounded in the reply (the study's `Extraction.grounded`: stated there in digits,
words or a phrase, e.g. in study 1 "all three" grounds 3); otherwise a note says so. What is asked, in which
schema and regular expression, is the study's (grace/extract/plugin.py).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from grace.chat import adapt
from grace.client import RequestFailed, make_client, post_json
from grace.config import Retry
from grace.extract.plugin import Extraction
from grace.progress import Progress
from grace.serving.base import Endpoint
from grace.serving.gate import Gate

SYSTEM = (
    "You read a participant's reply to a questionnaire and copy out the answers it states. "
    "Copy values exactly as the reply gives them. Use null for anything the reply does not state. Never infer."
)


def request_schema(part: Extraction) -> dict[str, Any]:
    return part.llm_answer.model_json_schema()


def build_messages(part: Extraction, response: str) -> list[dict[str, str]]:
    user = f"{part.llm_task}\n\nThe reply:\n<<<\n{response}\n>>>\n\nAnswer in JSON."
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def request_regex(part: Extraction) -> str:
    """The JSON of `request_schema(part)` as a regular expression: compact, bounded numbers, no free whitespace."""
    return part.llm_regex


def build_payload(part: Extraction, response: str, model: str, max_tokens: int, mode: str = "regex",
                  stop_token_ids: tuple[int, ...] = ()) -> dict[str, Any]:
    """The chat request. mode "regex" (default) constrains to compact JSON of the schema; mode "json" passes the
    JSON schema itself, which on vLLM 0.32 lets a weak model emit blanks until max_tokens (xgrammar allows any
    whitespace, even with disable_any_whitespace)."""
    constraint = {"regex": request_regex(part)} if mode == "regex" else {"json": request_schema(part)}
    payload: dict[str, Any] = {
        "model": model,
        "messages": build_messages(part, response),
        "temperature": 0.0,
        "max_tokens": max_tokens,
        "structured_outputs": constraint,
    }
    if stop_token_ids:
        payload["stop_token_ids"] = list(stop_token_ids)
    return payload


def for_endpoint(payload: dict[str, Any], endpoint: Endpoint) -> dict[str, Any]:
    """The request as this model takes it: the instructions folded into the user turn where its template refuses
    a system message; a reasoning model gets low effort and room for its reasoning before the JSON."""
    out = {**payload, "messages": adapt(payload["messages"], endpoint.chat_form)}
    if endpoint.reasoning is not None:
        out["reasoning_effort"] = "low"
        out["max_tokens"] = payload["max_tokens"] + endpoint.reasoning.max_tokens
    return out


def parse_reply(part: Extraction, content: str | None) -> BaseModel:
    """The model's JSON as the study's LLM model; ValueError when it is not valid JSON of that shape."""
    try:
        data = json.loads(content or "", strict=False)
        return part.llm_answer.model_validate(data)
    except (json.JSONDecodeError, ValidationError) as e:
        raise ValueError(f"not JSON of the schema: {str(e).splitlines()[0][:120]}") from None


@dataclass
class LLMAnswer:
    """One LLM call's outcome: the parsed values, or an error; `attempts` requests were sent."""

    values: dict[str, Any] | None
    error: str | None = None
    attempts: int = 0


async def ask_many(
    endpoint: Endpoint, part: Extraction, responses: list[str], *, concurrency: int = 16, max_tokens: int = 200,
    retry: Retry | None = None, progress: Progress | None = None, gate: Gate | None = None,
) -> list[LLMAnswer]:
    """One structured-output request per response, `concurrency` in flight; order kept.

    Under the server gate (grace.serving.gate): waits through a server restart; raises its stop (server lost,
    the first requests all rejected alike) once every request has settled."""
    retry = retry or Retry(attempts=3, request_timeout_s=300)
    gate = gate or Gate(endpoint)
    sem = asyncio.Semaphore(concurrency)
    url = f"{endpoint.v1}/chat/completions"
    async with make_client(concurrency, retry, gate=gate, api_key=endpoint.api_key) as client:

        async def counted(text: str) -> LLMAnswer:
            answer = await one(text)
            if progress is not None:
                progress(1)
            return answer

        async def one(text: str) -> LLMAnswer:
            async with sem:
                try:
                    payload = for_endpoint(build_payload(part, text, endpoint.model, max_tokens,
                                                         stop_token_ids=endpoint.stop_token_ids), endpoint)
                    posted = await post_json(client, url, payload, retry)
                except RequestFailed as e:
                    return LLMAnswer(None, f"request failed: {e}", e.attempts)
            choice = (posted.data.get("choices") or [{}])[0]
            content = (choice.get("message") or {}).get("content")
            try:
                parsed = parse_reply(part, content)
            except ValueError as e:
                cut = " (cut by max_tokens)" if choice.get("finish_reason") == "length" else ""
                return LLMAnswer(None, f"{e}{cut}", posted.attempts)
            return LLMAnswer(parsed.model_dump(), None, posted.attempts)

        try:
            answers = await asyncio.gather(*(counted(t) for t in responses), return_exceptions=True)
        finally:
            await gate.aclose()
    for a in answers:
        if isinstance(a, BaseException):
            raise a
    return [a for a in answers if isinstance(a, LLMAnswer)]
