"""Exp 2 prompts for harmony models (GPT-OSS): the chat conversation rendered exactly as vLLM's chat
completions render it, then the final-channel header, so the options are scored where the final answer begins.

A harmony model's reply starts with a channel header (`<|channel|>analysis...` or `<|channel|>final<|message|>`);
scoring the options right after the generation prompt `<|start|>assistant` would read them where the model
puts almost no probability. The rendering follows vLLM 0.32 (renderers/online_renderer.py
`_make_request_with_harmony` and entrypoints/openai/parser/harmony_utils.py):

- a leading system (or developer) message is taken out of the conversation; its text becomes the developer
  message's instructions (`# Instructions`), or, with VLLM_GPT_OSS_HARMONY_SYSTEM_INSTRUCTIONS=1 on the
  server, is appended to the system message's model identity;
- the system message carries the reasoning effort and the conversation start date, which the server takes
  from VLLM_SYSTEM_START_DATE (grace.serving.args.server_env sets it from the model's `reasoning` block, the
  same date used here);
- user turns follow as user messages, assistant turns in the final channel (their `reasoning` in analysis);
- openai-harmony renders for completion by the assistant (`...<|start|>assistant`).

tests/test_harmony.py checks the ids against vLLM's own functions and against a served harmony model.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from grace.config import ModelConfig
from grace.scoring.errors import ScoringError
from grace.scoring.tokenize import EncodedQuestion
from grace.scoring.vocab import ensure_tiktoken_env
from grace.serving.args import server_env
from grace.studies import Question

FINAL_HEADER = "<|channel|>final<|message|>"
EFFORTS = ("low", "medium", "high")


@lru_cache(maxsize=1)
def encoding() -> Any:
    """openai-harmony's GPT-OSS encoding, its vocabulary read offline (grace.scoring.vocab)."""
    ensure_tiktoken_env()
    from openai_harmony import HarmonyEncodingName, load_harmony_encoding

    return load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)


def _text(content: Any) -> str | None:
    """A chat message's content as text (a string, or a list of text parts), as vLLM flattens it."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p if isinstance(p, str) else p.get("text") for p in content if isinstance(p, str | dict)]
        texts = [t for t in parts if t is not None]
        return "".join(texts) if texts else None
    return None


class HarmonyRenderer:
    """Render chat messages into harmony prompt token ids, as a vLLM 0.32 server started with the same date
    (and the same VLLM_GPT_OSS_HARMONY_SYSTEM_INSTRUCTIONS) renders a chat completion request carrying
    `reasoning_effort: effort`."""

    def __init__(self, effort: str | None, start_date: str, *, system_instructions: bool = False) -> None:
        if effort is not None and effort not in EFFORTS:
            raise ValueError(f"reasoning effort {effort!r} is not one of {', '.join(EFFORTS)}")
        self.effort = effort
        self.start_date = start_date
        self.system_instructions = system_instructions

    @classmethod
    def for_model(cls, model: ModelConfig, profile: str | None = None) -> HarmonyRenderer:
        """The renderer for a harmony model's config: its reasoning block, and its server env on `profile`."""
        r = model.reasoning
        if r is None or r.format != "harmony":
            raise ValueError(f"model {model.name!r} has no `reasoning: {{format: harmony}}` block")
        env = server_env(model, model.profile(profile)) if profile else {}
        flag = env.get("VLLM_GPT_OSS_HARMONY_SYSTEM_INSTRUCTIONS", "0")
        return cls(r.effort, r.start_date, system_instructions=bool(int(flag or "0")))

    # -- the conversation ------------------------------------------------------------------------------
    def _system(self, instructions: str | None = None, *, effort: bool = True) -> Any:
        from openai_harmony import Message, ReasoningEffort, Role, SystemContent

        content = SystemContent.new()
        if instructions is not None and self.system_instructions:
            identity = content.model_identity
            content = content.with_model_identity(f"{identity}\n{instructions}" if identity else instructions)
        if effort and self.effort is not None:
            content = content.with_reasoning_effort(ReasoningEffort(self.effort.capitalize()))
        content = content.with_conversation_start_date(self.start_date)
        return Message.from_role_and_content(Role.SYSTEM, content)

    def _developer(self, instructions: str | None) -> Any:
        from openai_harmony import DeveloperContent, Message, Role

        content = DeveloperContent.new()
        if instructions is not None and not self.system_instructions:
            content = content.with_instructions(instructions)
        return Message.from_role_and_content(Role.DEVELOPER, content)

    def messages(self, chat: Sequence[dict[str, Any]]) -> list[Any]:
        """The harmony messages vLLM builds from these chat messages (no tools)."""
        from openai_harmony import Message, Role, TextContent

        rest = list(chat)
        instructions = None
        if rest and rest[0].get("role") in ("system", "developer"):
            instructions = _text(rest.pop(0).get("content"))
        out = [self._system(instructions if self.system_instructions else None)]
        developer = None if self.system_instructions else instructions
        if developer:
            out.append(self._developer(developer))
        for i, msg in enumerate(rest):
            role = msg.get("role")
            if role not in ("system", "developer", "user", "assistant") or msg.get("tool_calls"):
                raise ValueError(f"message {i + 1}: role {role!r} (or tool calls) is not rendered by Grace")
            if role == "assistant" and msg.get("reasoning"):
                out.append(Message.from_role_and_content(Role.ASSISTANT, msg["reasoning"]).with_channel("analysis"))
            content = msg.get("content") or ""
            contents = ([TextContent(text=content)] if isinstance(content, str)
                        else [TextContent(text=c.get("text", "")) for c in content])
            if role == "assistant":
                if contents and contents[0].text:
                    out.append(Message.from_role_and_contents(Role.ASSISTANT, contents).with_channel("final"))
            elif role in ("system", "developer"):
                text = _text(msg.get("content"))
                if text is not None:
                    if role == "system" and self.system_instructions:
                        out.append(self._system(text, effort=False))  # vLLM: no effort on a later system turn
                    else:
                        out.append(self._developer(text))
            else:
                out.append(Message.from_role_and_contents(Role.USER, contents))
        return out

    def generation_prompt_ids(self, chat: Sequence[dict[str, Any]]) -> list[int]:
        """The server's prompt: the conversation rendered for completion, ending `<|start|>assistant`."""
        from openai_harmony import Conversation, RenderConversationConfig, Role

        msgs = _drop_analysis_before_last_final(self.messages(chat))
        return list(encoding().render_conversation_for_completion(
            Conversation.from_messages(msgs), Role.ASSISTANT, config=RenderConversationConfig(auto_drop_analysis=False)
        ))

    def prompt_ids(self, chat: Sequence[dict[str, Any]]) -> list[int]:
        """Where Exp 2 scores: the server's prompt, then the final-channel header `<|channel|>final<|message|>`."""
        return self.generation_prompt_ids(chat) + self.encode(FINAL_HEADER)

    # -- tokens ----------------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        return list(encoding().encode(text, allowed_special="all"))

    def decode(self, ids: Sequence[int]) -> str:
        return str(encoding().decode_utf8(list(ids)))

    def option_ids(self, prompt_ids: Sequence[int], option: str) -> list[int]:
        """The option's tokens in context: those after the prompt's in prompt+option (special tokens bound the
        split, so they are the option's own tokens; the comparison makes sure)."""
        n = len(prompt_ids)
        full = self.encode(self.decode(prompt_ids) + option)
        if full[:n] == list(prompt_ids):
            return full[n:]
        return list(encoding().encode(option, allowed_special=set()))

    def encode_question(self, question: Question) -> EncodedQuestion:
        """One Exp 2 question in the shape every scoring path reads (grace.scoring.tokenize)."""
        prompt_ids = self.prompt_ids(question.messages)
        option_ids: dict[str, list[int]] = {}
        for opt in question.options:
            ids = self.option_ids(prompt_ids, opt)
            if not ids:
                raise ScoringError("bad_option", f"question {question.name!r}: option {opt!r} tokenizes to nothing")
            if ids in option_ids.values():
                raise ScoringError("bad_option", f"question {question.name!r}: option {opt!r} repeats tokens {ids}")
            option_ids[opt] = ids
        return EncodedQuestion(question.name, self.decode(prompt_ids), tuple(prompt_ids), tuple(question.options),
                               option_ids)


def _drop_analysis_before_last_final(msgs: list[Any]) -> list[Any]:
    """vLLM's auto_drop_analysis_messages: analysis messages before the last final assistant message go."""
    last = max((i for i, m in enumerate(msgs) if m.author.role == "assistant" and m.channel == "final"), default=-1)
    return [m for i, m in enumerate(msgs) if not (i < last and m.channel == "analysis")]
