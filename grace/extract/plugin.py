"""What a study gives the extraction stage: its answer schema, its rules, and what its LLM is asked.

A study's `Extraction` (e.g. grace/studies/study1/extraction.py) is handed to the stage, which asks it: the rules
read every reply; the LLM is asked, under vLLM structured outputs, for the answer fields the rules found absent, and a
value it gives is kept only where `grounded` finds it stated in the reply. The stage (engine.py, llm.py,
models.py, evaluate.py) knows no study by name.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from grace.extract.text import RuleResult

if TYPE_CHECKING:  # a Study holds its parts: the studies import this module, not the other way round
    from grace.studies.base import Study


class AnswerFields(BaseModel):
    """The fields every study's extracted record has; a study's schema adds its answer fields."""

    model_config = ConfigDict(extra="forbid")

    reasoning: str | None = Field(None, description="the reply's text other than the answer lines")
    notes: list[str] = Field(
        default_factory=list,
        description="why a value is missing or flagged (conflicting answers, a sum that is not 100, ...)",
    )


class Extraction(ABC):
    """A study's reading of its Exp 1 replies. Subclasses set the class attributes and `rules`; the methods
    after it have defaults that suit an answer of plain values."""

    fields: type[AnswerFields]  # the extracted record's schema fields (schemas/<study>.json is made from it)
    answer_fields: tuple[str, ...]  # the fields a complete answer has (all read: status ok)
    llm_answer: type[BaseModel]  # what the LLM fills: the answer fields, None where the reply does not say
    llm_task: str  # what the questionnaire asked, in a few sentences, for the LLM
    llm_regex: str  # the compact JSON of `llm_answer` as a regular expression (the request's constraint)

    @abstractmethod
    def rules(self, response: str | None, finish_reason: str | None = None) -> RuleResult:
        """Read one reply with rules only; `missing` names the answer fields with no candidate at all."""

    def grounded(self, name: str, value: Any, reply: str) -> bool:
        """Whether the reply states the LLM's `value` for field `name`; only then is the value kept."""
        return re.search(rf"\b{re.escape(str(value))}\b", reply, re.IGNORECASE) is not None

    def put(self, name: str, value: Any, fields: dict[str, Any], notes: list[str]) -> bool:
        """Store a grounded LLM value in `fields`; False (with a note) when it cannot be used after all."""
        fields[name] = value
        return True

    def flagged(self, fields: dict[str, Any]) -> bool:
        """Whether the fields, the LLM's values included, hold a flagged value (the answer is then partial)."""
        return False

    def flatten(self, fields: dict[str, Any]) -> dict[str, Any]:
        """The fields as columns of the tidy table (notes joined)."""
        return {**fields, "notes": "; ".join(fields.get("notes") or [])}

    annotations: Annotations | None = None  # scoring against answers people read (`grace extract-eval`)


class Annotations(ABC):
    """How a study's annotated answers (JSONL: trial_id, response, gold) are read and compared with extraction."""

    tolerance: float = 0.0  # how far apart two numbers may lie and still count as the same

    @abstractmethod
    def read_gold(self, gold: dict[str, Any], where: Callable[[str], str]) -> dict[str, Any]:
        """The `gold` object's values by answer field (None: people read none); a DataError names `where(key)`."""

    def comparable(self, fields: dict[str, Any], name: str) -> Any:
        """An extracted value in the form `read_gold` gives it."""
        return fields.get(name)

    def same(self, name: str, got: Any, want: Any) -> bool:
        """Whether an extracted value matches the annotated one (both present)."""
        return bool(got == want)


def extraction_of(study: Study) -> Extraction:
    """The study's extraction part; ValueError when it has none."""
    if study.extraction is None:
        raise ValueError(f"no extraction rules for study {study.name!r}")
    return study.extraction
