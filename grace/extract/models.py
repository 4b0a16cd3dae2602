"""Pydantic models of the extracted answers; `schemas/study{1,2}.json` are generated from them.

Run `python -m grace.extract.models` to rewrite the committed schemas after a change; a test checks that the
committed files match these models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from grace.paths import project_root

STATUSES: tuple[str, ...] = ("ok", "partial", "unparseable", "refused")
STATE_KEYS: tuple[str, ...] = ("0", "1", "2", "3")


class _Fields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reasoning: str | None = Field(None, description="the reply's text other than the answer lines")
    notes: list[str] = Field(
        default_factory=list,
        description="why a value is missing or flagged (conflicting answers, a sum that is not 100, ...)",
    )


class Study1Fields(_Fields):
    """Study 1: the prior guess, the posterior bets over 0-3 and the knowledge judgment."""

    initial_answer: int | None = Field(None, ge=0, le=3, description="answer to the prior question, 0-3")
    probabilities: dict[Literal["0", "1", "2", "3"], float] | None = Field(
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
    knowledge: Literal["yes", "no"] | None = Field(None, description="does the speaker know exactly?")


class Study2Fields(_Fields):
    """Study 2: the chosen utterance and its two parts."""

    utterance: (
        Literal[
            "It was terrible", "It was bad", "It was good", "It was amazing",
            "It wasn't terrible", "It wasn't bad", "It wasn't good", "It wasn't amazing",
        ]
        | None
    ) = Field(None, description="one of the 8 utterances")
    polarity: Literal["affirmative", "negated"] | None = Field(None, description="'It was' or 'It wasn't'")
    quality: Literal["terrible", "bad", "good", "amazing"] | None = Field(None, description="the adjective")


FIELD_MODELS: dict[str, type[_Fields]] = {"study1": Study1Fields, "study2": Study2Fields}
ANSWER_FIELDS: dict[str, tuple[str, ...]] = {
    "study1": ("initial_answer", "probabilities", "knowledge"),
    "study2": ("utterance",),
}


def schema_for(study: str) -> dict:
    """The JSON Schema of one output record's schema fields plus status and method."""
    model = FIELD_MODELS[study]
    schema = model.model_json_schema()
    schema["properties"]["trial_id"] = {"type": "string", "title": "Trial Id"}
    schema["properties"]["status"] = {"enum": list(STATUSES), "type": "string", "title": "Status"}
    schema["properties"]["method"] = {"enum": ["rules", "llm"], "type": "string", "title": "Method"}
    schema["required"] = ["trial_id", "status", "method", *model.model_fields]
    schema["additionalProperties"] = True  # input columns are carried through
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://grace.local/schemas/{study}.json"
    return schema


def schema_path(study: str) -> Path:
    return project_root() / "schemas" / f"{study}.json"


def write_schemas() -> list[Path]:
    paths = []
    for study in FIELD_MODELS:
        p = schema_path(study)
        p.write_text(json.dumps(schema_for(study), indent=2) + "\n", encoding="utf-8")
        paths.append(p)
    return paths


if __name__ == "__main__":
    for p in write_schemas():
        print(p)
