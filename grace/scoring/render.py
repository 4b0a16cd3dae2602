"""Where Exp 2's prompts come from: the served model's own chat template, or a local tokenizer.

The server path renders and tokenizes through the server (`/tokenize` takes chat messages with
`add_generation_prompt` or `continue_final_message`, and applies the same template as the chat endpoint Exp 1
uses), so the scored prompt is the prompt the server would answer, with no second copy of the template in the flow
runner and no tokenizer download there (gated repositories on the cluster). Harmony models (GPT-OSS) are rendered
the way vLLM's chat endpoint renders them, client-side (grace.scoring.harmony): the server's /tokenize applies the
model's Jinja template, not the harmony renderer its chat endpoint uses. The in-process path, which loads
the weights here anyway, uses the local tokenizer (grace.scoring.tokenize).

An option's tokens are those that follow the prompt when the option is the start of the assistant's reply
(`continue_final_message`). They depend only on the end of the prompt (the generation prompt, the same for every
trial), so they are cached by the last TAIL prompt tokens: one tokenization per option per model, not per trial.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from grace.chat import adapt
from grace.client import RequestFailed, post_json
from grace.config import Retry, SystemPrompt
from grace.scoring.errors import ScoringError
from grace.scoring.harmony import HarmonyRenderer
from grace.scoring.tokenize import EncodedQuestion, check_options
from grace.serving.base import Endpoint
from grace.statuses import ScoringFailure
from grace.studies import Question

TAIL = 16  # prompt tokens that decide how an option tokenizes after them (the generation prompt lies within)


class Renderer(Protocol):
    async def encode(self, question: Question) -> EncodedQuestion: ...


def adapted(question: Question, chat_form: SystemPrompt) -> Question:
    return Question(question.name, adapt(question.messages, chat_form), question.options)


class ServerRenderer:
    """The served model's chat template, through its /tokenize and /detokenize endpoints."""

    def __init__(self, client: httpx.AsyncClient, endpoint: Endpoint, retry: Retry) -> None:
        self.client = client
        self.endpoint = endpoint
        self.retry = retry
        self._options: dict[tuple[tuple[int, ...], str], tuple[list[int], bool]] = {}
        self.requests = 0

    async def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            posted = await post_json(self.client, f"{self.endpoint.base_url}/{path}",
                                     {"model": self.endpoint.model, **payload}, self.retry, confirms=False)
        except RequestFailed as e:
            self.requests += e.attempts
            status: ScoringFailure = "rejected" if e.status_code is not None and 400 <= e.status_code < 500 else "error"
            raise ScoringError(status, f"/{path}: {e}", e.attempts) from None
        self.requests += posted.attempts
        return posted.data

    async def _tokens(self, payload: dict[str, Any]) -> list[int]:
        return [int(t) for t in (await self._post("tokenize", payload))["tokens"]]

    async def option_ids(self, messages: list[dict[str, str]], prompt_ids: list[int], option: str
                         ) -> tuple[list[int], bool]:
        """The option's token ids after the prompt, and whether it had to be tokenized alone (boundary merge)."""
        key = (tuple(prompt_ids[-TAIL:]), option)
        if key not in self._options:
            full = await self._tokens({"messages": [*messages, {"role": "assistant", "content": option}],
                                       "add_generation_prompt": False, "continue_final_message": True})
            n = len(prompt_ids)
            if full[:n] == prompt_ids and len(full) > n:
                self._options[key] = (full[n:], False)
            else:
                alone = await self._tokens({"prompt": option, "add_special_tokens": False})
                self._options[key] = (alone, True)
        ids, fallback = self._options[key]
        return list(ids), fallback

    async def encode(self, question: Question) -> EncodedQuestion:
        messages = adapt(question.messages, self.endpoint.chat_form)
        prompt_ids = await self._tokens({"messages": messages, "add_generation_prompt": True})
        prompt = str((await self._post("detokenize", {"tokens": prompt_ids}))["prompt"])
        option_ids: dict[str, list[int]] = {}
        fallback: list[str] = []
        for opt in question.options:
            ids, alone = await self.option_ids(messages, prompt_ids, opt)
            option_ids[opt] = ids
            if alone:
                fallback.append(opt)
        check_options(question, option_ids)
        return EncodedQuestion(question.name, prompt, tuple(prompt_ids), tuple(question.options), option_ids,
                               tuple(fallback))


class HarmonyQuestionRenderer:
    """A harmony model's prompts, rendered here as vLLM's chat endpoint renders them (its /tokenize does not:
    it applies the Jinja template), ending at the final-channel header where the answer begins."""

    def __init__(self, renderer: HarmonyRenderer) -> None:
        self.renderer = renderer

    async def encode(self, question: Question) -> EncodedQuestion:
        return self.renderer.encode_question(question)


def harmony_renderer(endpoint: Endpoint) -> HarmonyRenderer | None:
    """The harmony renderer matching this endpoint's server (its reasoning block and env), or None."""
    r = endpoint.reasoning
    if r is None or r.format != "harmony":
        return None
    flag = dict(endpoint.server_env).get("VLLM_GPT_OSS_HARMONY_SYSTEM_INSTRUCTIONS", "0")
    return HarmonyRenderer(r.effort, r.start_date, system_instructions=bool(int(flag or "0")))


def renderer_for(endpoint: Endpoint, client: httpx.AsyncClient, retry: Retry) -> Renderer:
    """How the server path renders this endpoint's prompts: harmony client-side, else the server's template."""
    h = harmony_renderer(endpoint)
    return HarmonyQuestionRenderer(h) if h is not None else ServerRenderer(client, endpoint, retry)
