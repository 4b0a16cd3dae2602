"""Chat roles per model: the study's messages in the form the model's chat template accepts.

Every study writes a system message (the participant instructions) and a user turn. Some templates refuse the
system role (Gemma-2's raises "System role not supported"); for those the instructions are folded into the start
of the first user turn, the usual remedy. Exp 1, Exp 2 and the LLM extraction all send `adapt(messages, form)`,
records keep exactly what was sent, and the prompt version says which form was used.
"""

from __future__ import annotations

from grace.config import SystemPrompt

Messages = list[dict[str, str]]


def fold_system(messages: Messages) -> Messages:
    """The system messages' text joined to the start of the first user turn; the other turns unchanged."""
    system = [m["content"] for m in messages if m["role"] == "system"]
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if not system:
        return rest
    text = "\n\n".join(system)
    for m in rest:
        if m["role"] == "user":
            m["content"] = f"{text}\n\n{m['content']}"
            return rest
    return [{"role": "user", "content": text}, *rest]


def adapt(messages: Messages, form: SystemPrompt) -> Messages:
    """The messages to send to a model whose system-message form is `form`."""
    return fold_system(messages) if form == "fold" else [dict(m) for m in messages]


def versioned(prompt_version: str, form: SystemPrompt) -> str:
    """The prompt version of what was sent: the study's version, marked when the system text was folded."""
    return f"{prompt_version}+fold" if form == "fold" else prompt_version
