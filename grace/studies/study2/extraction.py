"""Study 2's extraction: the chosen utterance and its two parts, read by rules (rules.py), else by the LLM.

An utterance the LLM gives is kept when the reply names its adjective, and a negation for a negated one.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from grace.extract.plugin import AnswerFields, Extraction
from grace.extract.text import RuleResult
from grace.studies.study2.rules import extract_study2, fields_for
from grace.studies.study2.study import UTTERANCES, Quality, Utterance


class Study2Fields(AnswerFields):
    """Study 2: the chosen utterance and its two parts."""

    utterance: Utterance | None = Field(None, description="one of the 8 utterances")
    polarity: Literal["affirmative", "negated"] | None = Field(None, description="'It was' or 'It wasn't'")
    quality: Quality | None = Field(None, description="the adjective")


class LLMStudy2(BaseModel):
    model_config = ConfigDict(extra="forbid")
    utterance: Utterance | None = None


TASK = (
    "The participant had to choose one of eight utterances: It was terrible, It was bad, It was good, It was "
    "amazing, It wasn't terrible, It wasn't bad, It wasn't good, It wasn't amazing. Give the one chosen."
)
REGEX = r'\{"utterance":(null|' + "|".join(f'"{u}"' for u in UTTERANCES) + r")\}"


def grounded(utterance: str, text: str) -> bool:
    low = text.lower().replace("\u2019", "'")
    quality = utterance.rsplit(" ", 1)[1]
    if not re.search(rf"\b{quality}\b", low):
        return False
    return ("n't" in low or re.search(r"\bnot\b", low) is not None) if "wasn't" in utterance else True


class Study2Extraction(Extraction):
    fields = Study2Fields
    answer_fields = ("utterance",)
    llm_answer = LLMStudy2
    llm_task = TASK
    llm_regex = REGEX

    def rules(self, response: str | None, finish_reason: str | None = None) -> RuleResult:
        return extract_study2(response, finish_reason)

    def grounded(self, name: str, value: Any, reply: str) -> bool:
        return grounded(value, reply)

    def put(self, name: str, value: Any, fields: dict[str, Any], notes: list[str]) -> bool:
        fields.update(fields_for(value))
        return True
