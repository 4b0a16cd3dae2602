"""The extracted records' JSON Schemas: `schemas/<study>.json`, generated from each study's `Extraction.fields`.

Run `python -m grace.extract.models` to rewrite the committed schemas after a change; a test checks that the
committed files match the models.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from grace.extract.plugin import extraction_of
from grace.paths import project_root
from grace.statuses import EXTRACTION_STATUSES as STATUSES
from grace.studies.base import Study


def schema_for(study: Study) -> dict:
    """The JSON Schema of one output record's schema fields plus status and method."""
    model = extraction_of(study).fields
    schema = model.model_json_schema()
    schema["properties"]["trial_id"] = {"type": "string", "title": "Trial Id"}
    schema["properties"]["status"] = {"enum": list(STATUSES), "type": "string", "title": "Status"}
    schema["properties"]["method"] = {"enum": ["rules", "llm"], "type": "string", "title": "Method"}
    schema["required"] = ["trial_id", "status", "method", *model.model_fields]
    schema["additionalProperties"] = True  # input columns are carried through
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
