"""Study 1's extraction: the schema of its answers, its rules, the LLM's task, and the grounding of its values.

The rules are grace/studies/study1/rules.py (and prose.py); the LLM fills only what they found absent, and a
value is kept where the reply's segment for that field states it (`grounded`: "all three" grounds 3, "he does
not know exactly" grounds "no"). Bets the LLM gives are kept only when they sum to 100% (or to 1).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from grace.errors import DataError
from grace.extract.plugin import Annotations, AnswerFields, Extraction
from grace.extract.text import RuleResult
from grace.studies.study1.prose import judgments, mentions_count
from grace.studies.study1.rules import FIELDS, _probability_fields, answer_text, extract_study1
from grace.studies.study1.study import STATES, Knowledge, State


class Study1Fields(AnswerFields):
    """Study 1: the prior guess, the posterior bets over 0-3 and the knowledge judgment."""

    initial_answer: int | None = Field(None, ge=0, le=3, description="answer to the prior question, 0-3")
    probabilities: dict[State, float] | None = Field(
        None, description="posterior bets over the states 0-3, normalised to sum to 1"
    )
    probabilities_raw: list[float] | None = Field(
        None, min_length=4, max_length=4, description="the numbers as written, for the states 0, 1, 2, 3"
    )
    probabilities_unit: Literal["percent", "fraction", "dollars"] | None = Field(
        None, description="how the raw numbers were written"
    )
    probabilities_sum: float | None = Field(None, description="sum of the raw numbers, in percent")
    sums_to_100: bool | None = Field(None, description="whether the raw numbers summed to 100% (within 1)")
    knowledge: Knowledge | None = Field(None, description="does the speaker know exactly?")


class LLMStudy1(BaseModel):
    model_config = ConfigDict(extra="forbid")
    initial_answer: int | None = Field(None, ge=0, le=3)
    probabilities: list[float] | None = Field(None, min_length=4, max_length=4)
    knowledge: Knowledge | None = None


TASK = (
    "The questionnaire asked three things: initial_answer, a number from 0 to 3; probabilities, four "
    "numbers for the answers 0, 1, 2 and 3 in that order (as written, e.g. percentages); knowledge, yes or no "
    "(does the speaker know exactly?)."
)
_NUMBER = r"(100|[1-9]?[0-9])(\.[0-9]{1,4})?"
REGEX = (r'\{"initial_answer":(null|[0-3]),"probabilities":(null|\[' + _NUMBER + "(," + _NUMBER + r"){3}\]),"
         r'"knowledge":(null|"yes"|"no")\}')
_NUMS = re.compile(r"\d+(?:\.\d+)?")


def _numbers(text: str) -> set[float]:
    return {float(n) for n in _NUMS.findall(text)}


def grounded(field: str, value: Any, text: str) -> bool:
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


class Study1Annotations(Annotations):
    """tests/fixtures/real_answers: `gold` has initial_answer 0-3, bets (the four amounts on 0..3 in the answer's
    own unit) and knowledge yes/no, each null where people read none; bets compare after normalising."""

    tolerance = 0.01

    def read_gold(self, gold: dict[str, Any], where: Callable[[str], str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        v = gold.get("initial_answer")
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 3):
            raise DataError(f"{where('initial_answer')}: {v!r} is not a whole number from 0 to 3 or null")
        out["initial_answer"] = v
        out["probabilities"] = _bets(gold.get("bets"), where("bets"))
        v = gold.get("knowledge")
        if v is not None and v not in ("yes", "no"):
            raise DataError(f"{where('knowledge')}: {v!r} is not 'yes', 'no' or null")
        out["knowledge"] = v
        return out

    def comparable(self, fields: dict[str, Any], name: str) -> Any:
        v = fields.get(name)
        if name == "probabilities" and v is not None:
            return tuple(v[s] for s in STATES)
        return v

    def same(self, name: str, got: Any, want: Any) -> bool:
        if name == "probabilities":
            return all(abs(a - b) <= self.tolerance for a, b in zip(got, want, strict=True))
        return bool(got == want)


def _bets(v: Any, where: str) -> tuple[float, ...] | None:
    if not v:  # null or [] = the answer gave none
        return None
    if (not isinstance(v, list) or len(v) != 4
            or not all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x >= 0
                       for x in v) or sum(v) <= 0):
        raise DataError(f"{where}: {v!r} is not four amounts >= 0 (on 0, 1, 2, 3) with a positive sum")
    total = float(sum(v))
    return tuple(x / total for x in v)


class Study1Extraction(Extraction):
    fields = Study1Fields
    answer_fields = FIELDS
    llm_answer = LLMStudy1
    llm_task = TASK
    llm_regex = REGEX
    annotations = Study1Annotations()

    def rules(self, response: str | None, finish_reason: str | None = None) -> RuleResult:
        return extract_study1(response, finish_reason)

    def grounded(self, name: str, value: Any, reply: str) -> bool:
        return grounded(name, value, answer_text(reply, name))

    def put(self, name: str, value: Any, fields: dict[str, Any], notes: list[str]) -> bool:
        if name != "probabilities":
            fields[name] = value
            return True
        unit = "fraction" if all(v <= 1 for v in value) and sum(value) <= 1.02 else "percent"
        total = sum(value) * (100 if unit == "fraction" else 1)
        if any(v < 0 for v in value) or abs(total - 100) > 1:
            notes.append(f"llm: probabilities {value} do not sum to 100% (dropped)")
            return False
        probs, _ = _probability_fields(list(value), unit, notes)
        fields.update(probs or {})
        return fields.get("probabilities") is not None

    def flagged(self, fields: dict[str, Any]) -> bool:
        return fields.get("sums_to_100") is False

    def flatten(self, fields: dict[str, Any]) -> dict[str, Any]:
        """The bets also as p0..p3 columns."""
        probs = fields.get("probabilities")
        return {**super().flatten(fields), **{f"p{s}": probs.get(s) if probs else None for s in STATES}}
