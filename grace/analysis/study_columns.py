"""A study's own columns in the all-models tables: its stimulus columns (as its input CSV names them), its design
cell's columns, and its extracted answer fields (from its extraction schema), with their types and meanings.

Types come from the values (a stimulus column is an integer when every value is a whole number, as R and pandas
would read it) and from the schema (an extracted field's JSON type); a name that clashes with one of Grace's own
columns is prefixed (`input_` for a stimulus column, `extracted_` for an answer field).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from grace.analysis.columns import TABLES, Column, Exp1Row, Exp2Row, FieldType, StudyColumns
from grace.analysis.sources import Trials
from grace.studies import Study

_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
JSON_TYPES: dict[str, FieldType] = {"string": "string", "integer": "integer", "number": "number",
                                    "boolean": "boolean"}
SKIPPED_FIELDS = ("reasoning",)  # the reply's text besides the answer lines: the response column holds it all
RENAMED_FIELDS = {"notes": "extraction_notes"}  # why a value is missing or flagged, joined by "; "


def fixed_names() -> set[str]:
    return {c.name for cols in TABLES.values() for c in cols if isinstance(c, Column)}


def infer_type(values: Iterable[str]) -> FieldType:
    """integer when every non-empty value is a whole number written plainly ("007" is not), number when every
    one is a number, else string."""
    present = [v.strip() for v in values if v.strip()]
    if not present:
        return "string"
    if all(_INTEGER.fullmatch(v) for v in present):
        return "integer"
    if all(_NUMBER.fullmatch(v) for v in present):
        return "number"
    return "string"


def _trial_getter(name: str) -> Any:
    def get(r: Exp1Row | Exp2Row) -> str | None:
        return r.trial.get(name) or None
    return get


def stimulus_columns(study: Study, trials: Trials) -> list[Column]:
    taken = fixed_names()
    out = []
    for name in trials.columns:
        # the stage tables already keep an input column named like one of theirs as input_<name> (grace.stage)
        original = name[len("input_"):] if name.startswith("input_") and name[len("input_"):] in taken else name
        kind = ("a required" if original in study.required_columns else
                "an optional" if original in study.optional_columns else "an extra")
        what = f"{kind} column of the {study.name} input CSV, as in the file"
        shown = f"input_{original}" if original in taken else original
        if shown != original:
            what += f" (named {original!r} there; renamed: Grace has a column of that name)"
        get = _trial_getter(name)
        out.append(Column(shown, infer_type(t.get(name, "") for t in trials.rows.values()), what, exp1=get, exp2=get))
    return out


def design_columns(study: Study, trials: Trials, stimulus: list[Column]) -> list[Column]:
    """The design cell's columns (Study.condition) not already a stimulus column of the same name."""
    have = {c.name for c in stimulus}
    cells = {tid: study.condition(t) for tid, t in trials.rows.items()}
    out = []
    for name in study.condition_columns:
        if name in have:
            continue

        def get(r: Exp1Row | Exp2Row, name: str = name) -> str | None:
            return (study.condition(r.trial).get(name) or None) if r.trial else None

        values = [c.get(name, "") for c in cells.values()]
        out.append(Column(name, infer_type(values), f"the design cell's {name}, as Grace reads it from the input "
                          f"(the same in every wording of the input; {study.name}'s condition)", exp1=get, exp2=get))
    return out


def _plain(prop: dict[str, Any]) -> dict[str, Any]:
    """A schema property without its `null` alternative."""
    alts = [a for a in prop.get("anyOf", []) if a.get("type") != "null"]
    return {**prop, **alts[0]} if len(alts) == 1 else prop


def extracted_columns(study: Study) -> list[Column]:
    """The study's extracted answer fields as columns, in its schema's order: scalar fields as they are; an object
    field with named keys (study 1's bets) as the columns the study's flatten makes of it, found by probing
    flatten with a distinct value per key; lists and the free-text `reasoning` left out (notes: joined)."""
    part = study.extraction
    if part is None:
        return []
    schema = part.fields.model_json_schema()
    props: dict[str, Any] = schema.get("properties", {})
    default = part.fields.model_validate({}).model_dump()
    taken = fixed_names()
    out: list[Column] = []

    def add(key: str, type_: FieldType, description: str, enum: tuple[str, ...] | None = None) -> None:
        name = RENAMED_FIELDS.get(key, key)
        name = f"extracted_{name}" if name in taken else name

        def get(r: Exp1Row | Exp2Row, key: str = key) -> Any:
            return r.answers.get(key) if isinstance(r, Exp1Row) else None

        out.append(Column(name, type_, f"extracted: {description}", exp1=get, enum=enum))

    for key, raw in props.items():
        if key in SKIPPED_FIELDS:
            continue
        prop = _plain(raw)
        desc = str(prop.get("description") or raw.get("description") or key)
        kind = prop.get("type")
        if key == "notes":
            continue  # last, below
        if kind in JSON_TYPES:
            enum = tuple(str(v) for v in prop["enum"]) if "enum" in prop else None
            add(key, JSON_TYPES[kind], desc, enum)
        elif kind == "object" and "enum" in prop.get("propertyNames", {}):
            keys = [str(k) for k in prop["propertyNames"]["enum"]]
            probe = {k: 1000.25 + i for i, k in enumerate(keys)}
            flat = part.flatten({**default, key: probe})
            value_type = JSON_TYPES.get(str(prop.get("additionalProperties", {}).get("type")), "number")
            for col, v in flat.items():
                if col not in props and v in probe.values():
                    k = keys[list(probe.values()).index(v)]
                    add(col, value_type, f"{desc}: the value for {k}")
    if "notes" in props:
        add("notes", "string", f"{props['notes'].get('description', 'notes')}; several joined by '; '")
    return out


def study_columns(study: Study, trials: Trials) -> StudyColumns:
    stimulus = stimulus_columns(study, trials)
    return StudyColumns(stimulus, design_columns(study, trials, stimulus), extracted_columns(study))
