"""Prompt and option tokenization in context, shared by every scoring path.

The prompt is the chat template applied with the generation prompt, so it ends exactly where the answer
begins. Each option is tokenized together with the prompt and its tokens are those after the prompt's
tokens (the BPE boundary: an option's first token may carry a leading space or merge differently alone).
If the prompt's tokens are not a prefix of prompt+option's tokens (a merge across the boundary), that
option is tokenized alone and the question records it in `boundary_fallback`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from grace.config import ModelConfig, SystemPrompt
from grace.errors import ConfigError
from grace.scoring.errors import ScoringError
from grace.studies import Question

Tokenizer = Any  # a transformers PreTrainedTokenizerBase


@dataclass(frozen=True)
class EncodedQuestion:
    """What every path scores: the prompt's token ids and each option's token ids after it."""

    name: str
    prompt: str
    prompt_ids: tuple[int, ...]
    options: tuple[str, ...]
    option_ids: dict[str, list[int]]
    boundary_fallback: tuple[str, ...] = ()

    @property
    def max_len(self) -> int:
        return len(self.prompt_ids) + max(len(v) for v in self.option_ids.values())


def tokenizer_source(model: ModelConfig) -> tuple[str, str | None]:
    """Where the served model's tokenizer lives: the local weights folder, else the hub id at its revision."""
    if model.local_path:
        return model.weights, None
    return model.hf_id, model.revision


@lru_cache(maxsize=8)
def _load(source: str, revision: str | None) -> Tokenizer:
    from transformers import AutoTokenizer

    local = Path(source).is_dir()
    try:  # a local folder never touches the hub
        return AutoTokenizer.from_pretrained(source, revision=revision, local_files_only=local)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot load the tokenizer from {source}: {str(e).splitlines()[0]}") from None


def load_tokenizer(model: ModelConfig | str) -> Tokenizer:
    if isinstance(model, ModelConfig):
        return _load(*tokenizer_source(model))
    return _load(str(model), None)


def render_prompt(tokenizer: Tokenizer, messages: list[dict[str, str]]) -> str:
    """The chat template applied with the generation prompt; ScoringError('rejected') with the template's own
    message when the template refuses the conversation (e.g. "System role not supported")."""
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(f"tokenizer {getattr(tokenizer, 'name_or_path', '?')} has no chat template")
    try:
        return str(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
    except Exception as e:  # jinja2's TemplateError (raise_exception in the template) and its kin
        if type(e).__module__.split(".")[0] != "jinja2":
            raise
        raise ScoringError("rejected", f"chat template of {getattr(tokenizer, 'name_or_path', '?')}: {e}") from None


def local_chat_form(tokenizer: Tokenizer) -> SystemPrompt:
    """native if the local template renders a system message, else fold (as the server detects it)."""
    try:
        render_prompt(tokenizer, [{"role": "system", "content": "Instructions."}, {"role": "user", "content": "Hi."}])
        return "native"
    except ScoringError:
        return "fold"


def _ids(tokenizer: Tokenizer, text: str) -> list[int]:
    # The chat template writes the special tokens (BOS, role markers) itself: add none here.
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def check_options(question: Question, option_ids: dict[str, list[int]]) -> None:
    """ScoringError('bad_option') if an option is listed twice, has no tokens, or two options share tokens."""
    dupes = sorted({o for o in question.options if question.options.count(o) > 1})
    if dupes:
        raise ScoringError("bad_option", f"question {question.name!r}: option {dupes[0]!r} is listed twice")
    seen: dict[tuple[int, ...], str] = {}
    for opt, ids in option_ids.items():
        if not ids:
            raise ScoringError("bad_option", f"question {question.name!r}: option {opt!r} tokenizes to nothing")
        if tuple(ids) in seen:
            raise ScoringError("bad_option", f"question {question.name!r}: options {seen[tuple(ids)]!r} and "
                                             f"{opt!r} tokenize to the same tokens {ids}")
        seen[tuple(ids)] = opt


def encode_question(tokenizer: Tokenizer, question: Question) -> EncodedQuestion:
    """Tokenize one question with a local tokenizer; ScoringError('bad_option') on a bad option set."""
    prompt = render_prompt(tokenizer, question.messages)
    prompt_ids = _ids(tokenizer, prompt)
    n = len(prompt_ids)
    option_ids: dict[str, list[int]] = {}
    fallback: list[str] = []
    for opt in dict.fromkeys(question.options):
        full = _ids(tokenizer, prompt + opt)
        if full[:n] == prompt_ids and len(full) > n:
            ids = full[n:]
        else:
            ids = _ids(tokenizer, opt)
            fallback.append(opt)
        option_ids[opt] = ids
    check_options(question, option_ids)
    return EncodedQuestion(question.name, prompt, tuple(prompt_ids), tuple(question.options), option_ids,
                           tuple(fallback))
