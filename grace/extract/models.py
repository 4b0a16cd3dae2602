"""The extracted records' JSON Schemas: `schemas/<study>.json`, one line of `extracted.jsonl` (the
grace.records.ExtractedRecord the stage and `grace extract --input` write) with its `fields` those of the
study's `Extraction.fields`.

Run `python -m grace.extract.models` to rewrite the committed schemas after a change; a test checks that the
committed files match the models.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from pydantic import create_model

from grace.extract.plugin import extraction_of
from grace.paths import project_root
from grace.records import ExtractedRecord
from grace.studies.base import Study


def schema_for(study: Study) -> dict:
    """The JSON Schema of one extracted record of the study: every field written, `fields` the study's."""
    answer = extraction_of(study).fields
    record = create_model(f"{type(study).__name__}ExtractedRecord", __base__=ExtractedRecord, fields=(answer, ...))
    schema = record.model_json_schema()
    schema["required"] = list(schema["properties"])  # a written line has every field (defaults included)
    schema["$defs"][answer.__name__]["required"] = list(answer.model_fields)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://grace.local/schemas/{study.name}.json"
    return schema


def schema_path(study: str) -> Path:
    return project_root() / "schemas" / f"{study}.json"


def write_schemas(studies: Iterable[Study]) -> list[Path]:
    """Each study's schema file (studies without an extraction stage have none)."""
    paths = []
    for study in studies:
        if study.extraction is None:
            continue
        p = schema_path(study.name)
        p.write_text(json.dumps(schema_for(study), indent=2) + "\n", encoding="utf-8")
        paths.append(p)
    return paths


if __name__ == "__main__":  # every registered study's schema
    from grace.studies.registry import STUDIES

    for p in write_schemas(STUDIES.values()):
        print(p)
