"""The LLM stage: what the rules left missing, read by a model under vLLM structured outputs (JSON schema).

The request carries `structured_outputs: {"json": schema}` (vLLM's field; the older `guided_json` is silently
ignored), so the reply is JSON of the schema's shape; it is parsed with `json.loads(strict=False)` because
constrained strings may hold raw control characters. The LLM only fills fields the rules found *absent*, and a
value is kept only if it is grounded in the reply (stated there in digits, words or a phrase: "all three" grounds
3, "he does not know exactly" grounds "no"); otherwise a note says so.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from grace.chat import adapt
from grace.client import RequestFailed, make_client, post_json
from grace.config import Retry
from grace.extract.prose import judgments, mentions_count
from grace.progress import Progress
from grace.serving.base import Endpoint
from grace.serving.watch import Gate
from grace.studies.study2 import UTTERANCES

PROMPT_VERSION = "extract-llm-v1"


class LLMStudy1(BaseModel):
    model_config = ConfigDict(extra="forbid")
    initial_answer: int | None = Field(None, ge=0, le=3)
    probabilities: list[float] | None = Field(None, min_length=4, max_length=4)
    knowledge: Literal["yes", "no"] | None = None


class LLMStudy2(BaseModel):
    model_config = ConfigDict(extra="forbid")
    utterance: (
        Literal[
            "It was terrible", "It was bad", "It was good", "It was amazing",
            "It wasn't terrible", "It wasn't bad", "It wasn't good", "It wasn't amazing",
        ]
        | None
    ) = None


LLM_MODELS: dict[str, type[BaseModel]] = {"study1": LLMStudy1, "study2": LLMStudy2}

SYSTEM = (
    "You read a participant's reply to a questionnaire and copy out the answers it states. "
    "Copy values exactly as the reply gives them. Use null for anything the reply does not state. Never infer."
)
TASK = {
    "study1": (
        "The questionnaire asked three things: initial_answer, a number from 0 to 3; probabilities, four "
        "numbers for the answers 0, 1, 2 and 3 in that order (as written, e.g. percentages); knowledge, yes or no "
        "(does the speaker know exactly?)."
    ),
    "study2": (
        "The participant had to choose one of eight utterances: It was terrible, It was bad, It was good, It was "
        "amazing, It wasn't terrible, It wasn't bad, It wasn't good, It wasn't amazing. Give the one chosen."
    ),
}


def request_schema(study: str) -> dict[str, Any]:
    return LLM_MODELS[study].model_json_schema()


def build_messages(study: str, response: str) -> list[dict[str, str]]:
    user = f"{TASK[study]}\n\nThe reply:\n<<<\n{response}\n>>>\n\nAnswer in JSON."
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


_NUMBER = r"(100|[1-9]?[0-9])(\.[0-9]{1,4})?"
_REGEX = {
    "study1": (r'\{"initial_answer":(null|[0-3]),"probabilities":(null|\[' + _NUMBER + "(," + _NUMBER + r"){3}\]),"
               r'"knowledge":(null|"yes"|"no")\}'),
    "study2": r'\{"utterance":(null|' + "|".join(f'"{u}"' for u in UTTERANCES) + r")\}",
}


def request_regex(study: str) -> str:
    """The JSON of `request_schema(study)` as a regular expression: compact, bounded numbers, no free whitespace."""
    return _REGEX[study]


def build_payload(study: str, response: str, model: str, max_tokens: int, mode: str = "regex",
                  stop_token_ids: tuple[int, ...] = ()) -> dict[str, Any]:
    """The chat request. mode "regex" (default) constrains to compact JSON of the schema; mode "json" passes the
    JSON schema itself, which on vLLM 0.32 lets a weak model emit blanks until max_tokens (xgrammar allows any
    whitespace, even with disable_any_whitespace)."""
    constraint = {"regex": request_regex(study)} if mode == "regex" else {"json": request_schema(study)}
    payload: dict[str, Any] = {
        "model": model,
        "messages": build_messages(study, response),
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


def parse_reply(study: str, content: str | None) -> BaseModel:
    """The model's JSON as the study's LLM model; ValueError when it is not valid JSON of that shape."""
    try:
        data = json.loads(content or "", strict=False)
        return LLM_MODELS[study].model_validate(data)
    except (json.JSONDecodeError, ValidationError) as e:
        raise ValueError(f"not JSON of the schema: {str(e).splitlines()[0][:120]}") from None


_NUMS = re.compile(r"\d+(?:\.\d+)?")


def _numbers(text: str) -> set[float]:
    return {float(n) for n in _NUMS.findall(text)}


def grounded_study1(field: str, value: Any, text: str) -> bool:
    """Whether the reply states `value`: in digits, or in words and phrases ("all three" grounds 3, "he does
    not know exactly" grounds "no"). A bet of 0 needs no mention (an unnamed state gets nothing), but at least
    one bet above 0 must be written in the reply."""
    if field == "initial_answer":
        return mentions_count(text, int(value))
    if field == "probabilities":
        nums = _numbers(text)

        def stated(v: float) -> bool:
            return v in nums or round(v * 100, 6) in nums or round(v / 100, 6) in nums

        return any(v > 0 for v in value) and all(v == 0 or stated(v) for v in value)
    if field == "knowledge":
        return bool(re.search(rf"\b{value}\b", text, re.IGNORECASE)) or value in judgments(text)
    return False


def grounded_study2(utterance: str, text: str) -> bool:
    low = text.lower().replace("\u2019", "'")
    quality = utterance.rsplit(" ", 1)[1]
    if not re.search(rf"\b{quality}\b", low):
        return False
    return ("n't" in low or re.search(r"\bnot\b", low) is not None) if "wasn't" in utterance else True


@dataclass
class LLMAnswer:
    """One LLM call's outcome: the parsed values, or an error; `attempts` requests were sent."""

    values: dict[str, Any] | None
    error: str | None = None
    attempts: int = 0


async def ask_many(
    endpoint: Endpoint, study: str, responses: list[str], *, concurrency: int = 16, max_tokens: int = 200,
    retry: Retry | None = None, progress: Progress | None = None, gate: Gate | None = None,
) -> list[LLMAnswer]:
    """One structured-output request per response, `concurrency` in flight; order kept.

    Under the server gate (grace.serving.watch): waits through a server restart; raises its stop (server lost,
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
                    payload = for_endpoint(build_payload(study, text, endpoint.model, max_tokens,
                                                         stop_token_ids=endpoint.stop_token_ids), endpoint)
                    posted = await post_json(client, url, payload, retry)
                except RequestFailed as e:
                    return LLMAnswer(None, f"request failed: {e}", e.attempts)
            choice = (posted.data.get("choices") or [{}])[0]
            content = (choice.get("message") or {}).get("content")
            try:
                parsed = parse_reply(study, content)
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
