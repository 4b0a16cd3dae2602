"""The all-models tables: per study and experiment, every model's rows in one table, with the declared columns,
written as CSV (what R, pandas and Excel read) and Parquet.

Exp 1: one row per trial x replicate, the extracted answer beside the reply. Exp 2: long form, one row per trial x
question x option (a trial without scores keeps one row with its status). Rows follow the run's model order, then
the input's trial order, then the replicate.

The CSV is R-friendly: one header row, UTF-8, numbers as numbers, missing values empty (never "None" or "nan"),
booleans TRUE / FALSE, a field with a comma, quote or line break quoted with doubled quotes (RFC 4180), so
readr, pandas and Excel read the same rows.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from grace.analysis.columns import TABLES, Column, Exp1Row, Exp2Row, FieldType
from grace.analysis.sources import RunRecords, StudyRecords, Trials
from grace.analysis.study_columns import study_columns
from grace.checkpoint import atomic_path
from grace.studies import Study

DTYPES: dict[FieldType, str] = {"string": "string", "integer": "Int64", "number": "Float64", "boolean": "boolean"}


@dataclass
class Table:
    name: str  # <study>_<experiment>_all_models
    study: Study
    experiment: str
    columns: list[Column]
    frame: pd.DataFrame

    @property
    def rows(self) -> int:
        return len(self.frame)


def table_name(study: str, experiment: str) -> str:
    return f"{study}_{experiment}_all_models"


def _order(trials: Trials) -> dict[str, int]:
    return {tid: i for i, tid in enumerate(trials.rows)}


def _sorted(records: dict[str, Any], order: dict[str, int]) -> list[Any]:
    return sorted(records.values(), key=lambda r: (order.get(r.trial_id, len(order)), r.trial_id,
                                                   getattr(r, "replicate", 0)))


def exp1_rows(st: StudyRecords, run: RunRecords, trials: Trials) -> Iterator[Exp1Row]:
    part = st.study.extraction
    meta = run.meta[st.model]
    for rec in _sorted(st.exp1, _order(trials)):
        ex = st.extracted.get(rec.key)
        answers = (part.flatten(ex.fields) if part is not None else dict(ex.fields)) if ex is not None else {}
        yield Exp1Row(meta, rec, ex, trials.rows.get(rec.trial_id, {}), answers)


def exp2_rows(st: StudyRecords, run: RunRecords, trials: Trials) -> Iterator[Exp2Row]:
    meta = run.meta[st.model]
    for rec in _sorted(st.exp2, _order(trials)):
        trial = trials.rows.get(rec.trial_id, {})
        if not rec.questions:
            yield Exp2Row(meta, rec, trial)
        for q, scores in rec.questions.items():
            for i, opt in enumerate(scores.options):
                yield Exp2Row(meta, rec, trial, q, scores, opt, i)


def _cell(value: Any, type_: FieldType) -> Any:
    """A value in its column's type; None for missing (an empty string, NaN, or a number that is not finite)."""
    if value is None or (isinstance(value, str) and not value.strip() and type_ != "string") or value == "":
        return None
    if type_ == "string":
        return str(value)
    if type_ == "boolean":
        return bool(value)
    if type_ == "integer":
        return int(value)
    x = float(value)
    return x if math.isfinite(x) else None


def frame(columns: list[Column], rows: Iterable[Exp1Row | Exp2Row]) -> pd.DataFrame:
    values: dict[str, list[Any]] = {c.name: [] for c in columns}
    for row in rows:
        for c in columns:
            values[c.name].append(_cell(c.value(row), c.type))
    return pd.DataFrame({c.name: pd.Series(values[c.name], dtype=DTYPES[c.type]) for c in columns})


def build_tables(run: RunRecords) -> list[Table]:
    """One table per study and experiment that has records, every model's rows in it."""
    by_study: dict[str, list[StudyRecords]] = {}
    for st in run.stages:
        by_study.setdefault(st.study.name, []).append(st)
    out = []
    for name, stages in by_study.items():
        study = stages[0].study
        trials = run.trials.get(name, Trials())
        own = study_columns(study, trials)
        for exp, entries in TABLES.items():
            if not any(getattr(st, exp) for st in stages):
                continue
            cols = own.expand(entries)
            rows: Iterable[Exp1Row | Exp2Row] = (
                (r for st in stages for r in exp1_rows(st, run, trials)) if exp == "exp1"
                else (r for st in stages for r in exp2_rows(st, run, trials)))
            out.append(Table(table_name(name, exp), study, exp, cols, frame(cols, rows)))
        for st in stages:
            orphans = [k for k in st.extracted if k not in st.exp1]
            if orphans:
                run.notes.append(f"{st.model}/{name}: {len(orphans)} extracted record(s) without their Exp 1 reply "
                                 f"are not in the table (e.g. {orphans[0]})")
            if st.extracted and (unread := [k for k in st.exp1 if k not in st.extracted]):
                run.notes.append(f"{st.model}/{name}: {len(unread)} repl(ies) not extracted: their extraction "
                                 f"columns are empty (e.g. {unread[0]})")
    return out


def csv_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Booleans as TRUE / FALSE (readr, pandas and Frictionless all read them; pandas would write True)."""
    out = df.copy()
    for col in out.columns:
        if str(out[col].dtype) == "boolean":
            out[col] = out[col].map(lambda v: None if v is pd.NA else ("TRUE" if v else "FALSE")).astype("string")
    return out


def write_table(table: Table, folder: Path) -> list[Path]:
    """folder/<name>.csv and .parquet, each written atomically."""
    csv_path, parquet_path = folder / f"{table.name}.csv", folder / f"{table.name}.parquet"
    with atomic_path(csv_path) as tmp:
        csv_frame(table.frame).to_csv(tmp, index=False, encoding="utf-8", lineterminator="\n", na_rep="",
                                      quoting=csv.QUOTE_MINIMAL, doublequote=True)
    with atomic_path(parquet_path) as tmp:
        table.frame.to_parquet(tmp, index=False)
    return [csv_path, parquet_path]
