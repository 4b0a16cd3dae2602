"""Text helpers shared by the rule extractors: normalisation, refusals, the reasoning left over."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from grace.statuses import ExtractionStatus

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " ", "\u2013": "-",
                         "\u2014": "-", "\u2212": "-", "\uff05": "%"})
_MARKDOWN = re.compile(r"(\*\*|\*|__|`+|^#+\s*)", re.MULTILINE)
_REFUSAL = re.compile(
    r"\b(i'?m sorry|i am sorry|i apologi[sz]e|i cannot|i can'?t|i am unable|i'?m unable|as an ai\b|"
    r"i won'?t|i do not feel comfortable|i'?m not able to|i must decline|i'?m not comfortable)",
    re.IGNORECASE,
)


def normalise(text: str) -> str:
    """Plain quotes and dashes, no markdown emphasis, code ticks or heading marks."""
    return _MARKDOWN.sub("", text.translate(_QUOTES))


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL.search(text))


@dataclass
class RuleResult:
    """What the rules read: the schema fields, a status, and which answer fields were simply absent.

    `missing` fields had no candidate value at all; only those may be filled by the LLM stage. A field with a
    conflict or an invalid value stays empty with a note: asking an LLM to pick would be a guess.
    """

    fields: dict[str, Any]
    status: ExtractionStatus
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    flagged: bool = False  # a value conflicted, was invalid, or summed to other than 100


def leftover_reasoning(text: str, is_answer: Callable[[str], bool]) -> str | None:
    """The reply's lines that hold no answer, with a leading 'Reasoning:' label dropped."""
    keep = []
    for line in text.splitlines():
        s = line.strip()
        if not s or is_answer(s):
            continue
        s = re.sub(r"^(reasoning|explanation|rationale|because)\s*[:\-]\s*", "", s, flags=re.IGNORECASE)
        if s:
            keep.append(s)
    out = "\n".join(keep).strip()
    return out or None


def decide_status(found: int, needed: int, flagged: bool, text: str) -> ExtractionStatus:
    """ok: every answer field read cleanly; partial: some; refused / unparseable: none."""
    if found == needed and not flagged:
        return "ok"
    if found:
        return "partial"
    return "refused" if is_refusal(text) else "unparseable"
