"""The extracted records' JSON Schemas: `schemas/<study>.json`, generated from each study's `Extraction.fields`.

Run `python -m grace.extract.models` to rewrite the committed schemas after a change; a test checks that the
committed files match the models.
"""

from __future__ import annotations

import json
from pathlib import Path

from grace.extract.plugin import extraction_for
from grace.paths import project_root
from grace.statuses import EXTRACTION_STATUSES as STATUSES
from grace.studies import STUDIES


def schema_for(study: str) -> dict:
    """The JSON Schema of one output record's schema fields plus status and method."""
    model = extraction_for(study).fields
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
    """Every registered study's schema file (studies without an extraction stage have none)."""
    paths = []
    for name, study in STUDIES.items():
        if study.extraction is None:
            continue
        p = schema_path(name)
        p.write_text(json.dumps(schema_for(name), indent=2) + "\n", encoding="utf-8")
        paths.append(p)
    return paths


if __name__ == "__main__":
    for p in write_schemas():
        print(p)
