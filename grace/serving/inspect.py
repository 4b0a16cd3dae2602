"""What Grace asks a server once it is ready, before any stage runs.

- Its vLLM version (`/version`), for records and error messages.
- That it answers log-probabilities of listed token ids (`logprob_token_ids`, vLLM 0.32 and newer; Exp 2's
  server path depends on it). An older server accepts the field and ignores it, answering only its top-k, so every
  trial would end `no_logprobs`: the model stops here instead, naming the version and the fix.
- Whether the model's chat template takes a system message (only when the model's config leaves
  `system_prompt` unset): rendered once through the server's own `/tokenize`, which applies the same template as
  its chat endpoint.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx

from grace.config import SystemPrompt
from grace.errors import ServerError
from grace.serving.base import Endpoint

TESTED_VLLM = "0.32"  # the release line whose API Grace is tested against (scripts/setup.sh installs it)
_PROBE_SYSTEM = "You are taking part in a study."
_PROBE_USER = "Hello."


class TemplateError(Exception):
    """The server could not render a conversation with the model's chat template; the template's own message."""


def error_message(r: httpx.Response) -> str:
    """The message of a vLLM (or OpenAI-style) error body, else the start of the body."""
    try:
        body = r.json()
    except ValueError:
        return r.text[:300].strip()
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if body.get("message"):
            return str(body["message"])
        if isinstance(body.get("detail"), str):
            return body["detail"]
    return r.text[:300].strip()


def server_version(client: httpx.Client, endpoint: Endpoint) -> str | None:
    try:
        r = client.get(f"{endpoint.base_url}/version")
        return str(r.json().get("version")) if r.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None


def tokenize_chat(client: httpx.Client, endpoint: Endpoint, messages: list[dict[str, str]], *,
                  add_generation_prompt: bool = True) -> list[int]:
    """The token ids of `messages` under the served model's chat template; TemplateError if it refuses them."""
    r = client.post(f"{endpoint.base_url}/tokenize", json={
        "model": endpoint.model, "messages": messages, "add_generation_prompt": add_generation_prompt})
    if r.status_code == 400:
        raise TemplateError(error_message(r))
    r.raise_for_status()
    return [int(t) for t in r.json()["tokens"]]


def detect_chat_form(client: httpx.Client, endpoint: Endpoint) -> SystemPrompt:
    """native when the template renders a system message, fold when it refuses one but renders the folded turn."""
    try:
        tokenize_chat(client, endpoint, [{"role": "system", "content": _PROBE_SYSTEM},
                                         {"role": "user", "content": _PROBE_USER}])
        return "native"
    except TemplateError:
        try:
            tokenize_chat(client, endpoint, [{"role": "user", "content": f"{_PROBE_SYSTEM}\n\n{_PROBE_USER}"}])
        except TemplateError as e:
            raise ServerError(f"model {endpoint.model}: its chat template renders no conversation: {e}") from None
        return "fold"


def _probe_ids(client: httpx.Client, endpoint: Endpoint) -> list[int]:
    """Two distinct token ids of the model's vocabulary (from the server's tokenizer)."""
    try:
        r = client.post(f"{endpoint.base_url}/tokenize", json={"model": endpoint.model, "prompt": "yes no maybe",
                                                                "add_special_tokens": False})
        ids = list(dict.fromkeys(int(t) for t in r.json()["tokens"])) if r.status_code == 200 else []
    except (httpx.HTTPError, ValueError, KeyError):
        ids = []
    return ids[:2] if len(ids) >= 2 else [1, 2]


def check_logprob_token_ids(client: httpx.Client, endpoint: Endpoint, version: str | None) -> None:
    """One scoring request for two known token ids; both must come back, else ServerError with the fix."""
    ids = _probe_ids(client, endpoint)
    r = client.post(f"{endpoint.v1}/completions", json={
        "model": endpoint.model, "prompt": "The answer is", "max_tokens": 1, "temperature": 0, "logprobs": 1,
        "logprob_token_ids": ids, "return_tokens_as_token_ids": True})
    got: dict[str, Any] = {}
    if r.status_code == 200:
        choice = (r.json().get("choices") or [{}])[0]
        got = ((choice.get("logprobs") or {}).get("top_logprobs") or [None])[0] or {}
    missing = [i for i in ids if f"token_id:{i}" not in got]
    if r.status_code != 200 or missing:
        answered = f"HTTP {r.status_code}: {error_message(r)}" if r.status_code != 200 else (
            f"it answered {len(got)} of the 2 requested token ids ({sorted(got) or 'none'})")
        raise ServerError(
            f"server for {endpoint.model} at {endpoint.base_url} (vLLM {version or 'version unknown'}) does not "
            f"answer logprob_token_ids: {answered}. Exp 2 needs vLLM {TESTED_VLLM} or newer, the release Grace is "
            "tested with: serve the image config/cluster.yaml names (images.vllm), or upgrade the server")


def harmony(endpoint: Endpoint) -> bool:
    """A harmony model (GPT-OSS): vLLM's chat endpoint renders it with openai-harmony, not a Jinja template, and
    turns a system message into the developer instructions: the system message is always taken."""
    return endpoint.reasoning is not None and endpoint.reasoning.format == "harmony"


def inspect_endpoint(endpoint: Endpoint, timeout_s: float = 120.0) -> Endpoint:
    """The endpoint with the server's version and the model's chat form filled in; ServerError if unusable."""
    with httpx.Client(timeout=timeout_s) as client:
        version = server_version(client, endpoint)
        check_logprob_token_ids(client, endpoint, version)
        form = endpoint.system_prompt or ("native" if harmony(endpoint) else detect_chat_form(client, endpoint))
    return dataclasses.replace(endpoint, server_version=version, chat_form=form)
