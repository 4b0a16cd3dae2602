"""The codebook of a run's analysis tables: a Frictionless Data Package (datapackage.json: every column's name,
type, meaning, allowed values or unit, each table's row count, size and hash) and the Markdown codebook (the
repository's analysis/README.md with this run's tables and columns appended).

Data Package: https://datapackage.org (Table Schema for the columns, CSV Dialect for the files); `frictionless
validate RUN/analysis/datapackage.json` checks every table against it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from grace.analysis.columns import Column
from grace.analysis.tables import Table
from grace.ui_format import md_escape


class Described(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FieldSpec(Described):
    name: str
    type: str
    description: str
    constraints: dict[str, Any] | None = None
    unit: str | None = None  # a Data Package extension property (the standard allows them)


class TableSchema(Described):
    fields: list[FieldSpec]
    missing_values: list[str] = Field(default=[""], serialization_alias="missingValues")
    primary_key: list[str] | None = Field(default=None, serialization_alias="primaryKey")


class Dialect(Described):
    delimiter: str = ","
    quote_char: str = Field(default='"', serialization_alias="quoteChar")
    double_quote: bool = Field(default=True, serialization_alias="doubleQuote")
    header: bool = True


class ResourceSpec(Described):
    name: str
    path: str
    title: str
    description: str
    profile: str = "tabular-data-resource"
    format: str = "csv"
    mediatype: str = "text/csv"
    encoding: str = "utf-8"
    bytes: int
    hash: str  # sha256:<hex>
    dialect: Dialect = Dialect()
    table_schema: TableSchema = Field(serialization_alias="schema")


class DataPackage(Described):
    profile: str = "tabular-data-package"
    name: str
    title: str
    description: str
    created: str
    resources: list[ResourceSpec]


PRIMARY_KEYS = {"exp1": ["model_name", "trial_id", "replicate"]}  # Exp 2: a failed trial's row has no option
TITLES = {"exp1": "Experiment 1: free-text replies and the answers extracted from them",
          "exp2": "Experiment 2: answer-option probabilities from log-probabilities"}


def field_spec(c: Column) -> FieldSpec:
    return FieldSpec(name=c.name, type=c.type, description=c.description, unit=c.unit,
                     constraints={"enum": list(c.enum)} if c.enum else None)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def resource(table: Table, csv_path: Path) -> ResourceSpec:
    unit = "trial x replicate" if table.experiment == "exp1" else "trial x question x option"
    return ResourceSpec(
        name=table.name, path=csv_path.name, title=f"{table.study.name}, {TITLES.get(table.experiment, '')}",
        description=(f"{table.rows} rows, one per {unit}, every model of the run "
                     f"(also as {table.name}.parquet)."),
        bytes=csv_path.stat().st_size, hash=f"sha256:{_sha256(csv_path)}",
        table_schema=TableSchema(fields=[field_spec(c) for c in table.columns],
                                 primary_key=PRIMARY_KEYS.get(table.experiment)),
    )


def package_name(run_dir: Path) -> str:
    """A Data Package name: lower case letters, digits, '-', '_' and '.'."""
    name = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in run_dir.resolve().name.lower())
    return f"grace-{name}".strip("-")


def datapackage(run_dir: Path, resources: list[ResourceSpec]) -> dict[str, Any]:
    pkg = DataPackage(name=package_name(run_dir), title=f"Grace run {run_dir.resolve().name}: all-models tables",
                      description="Every model's Experiment 1 and Experiment 2 results of one Grace run, per study; "
                                  "see README.md beside this file.",
                      created=datetime.now(UTC).isoformat(timespec="seconds"), resources=resources)
    return pkg.model_dump(mode="json", by_alias=True, exclude_none=True)


def columns_markdown(tables: list[Table], notes: list[str]) -> str:
    """This run's tables and every column, for the copy of the codebook in RUN/analysis/README.md."""
    out = ["", "## This run's tables", ""]
    for t in tables:
        out += [f"### `{t.name}.csv` ({t.rows} rows)", "", "| column | type | meaning |", "|---|---|---|"]
        for c in t.columns:
            extra = [f"unit: {c.unit}"] if c.unit else []
            extra += [f"one of: {', '.join(c.enum)}"] if c.enum else []
            meaning = md_escape(c.description + (f" ({'; '.join(extra)})" if extra else ""))
            out.append(f"| `{c.name}` | {c.type} | {meaning} |")
        out.append("")
    if notes:
        out += ["## Notes on this run", "", *[f"- {md_escape(n)}" for n in notes], ""]
    return "\n".join(out)
