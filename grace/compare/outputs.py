"""Reading a run folder for the comparison: which model/study outputs exist, each trial's condition, and the
Exp 2 and extracted Exp 1 answers (the one adapter that knows those files' field names).

Layout: RUN_DIR/<model>/<study>/exp2.jsonl (grace.records.Exp2Record) and extracted.jsonl (one
grace.records.ExtractedRecord per Exp 1 response, the schema fields under `fields`), read as every checkpoint
is (grace.checkpoint): a later line for a key replaces an earlier one, a torn last line is left out (noted).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import pandas as pd

from grace.checkpoint import Checkpoint, LoadReport
from grace.config import Config
from grace.errors import DataError, GraceError
from grace.records import Exp2Record, ExtractedRecord
from grace.studies import Study

STAGE_FILES = ("exp2.jsonl", "extracted.jsonl")
T = TypeVar("T")
TABLES = ("exp2.parquet", "exp1.parquet", "extracted.parquet")


@dataclass
class StudyOutputs:
    """One model's outputs for one study, as the comparison needs them."""

    model: str  # the model name recorded in the files (falls back to the folder name)
    study: Study
    folder: Path
    conditions: dict[str, dict[str, str]] = field(default_factory=dict)  # trial_id -> condition
    exp2: list[Exp2Record] = field(default_factory=list)  # status ok
    exp2_not_ok: dict[str, int] = field(default_factory=dict)  # status -> count
    extracted: list[dict[str, Any]] = field(default_factory=list)  # adapter rows, see extracted_row
    exp2_present: bool = False
    exp1_present: bool = False
    unknown_trials: int = 0  # trial ids whose condition was found nowhere (left out, reported)
    notes: list[str] = field(default_factory=list)
    # a study's per-trial data, computed once (see `once`); not copied by dataclasses.replace (a subset, e.g. one
    # prompt variant's records, computes its own)
    derived: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def once(self, key: str, make: Callable[[], T]) -> T:
        """`make()`, computed on the first call for this key and kept: the comparison and every paired
        difference of this model read the same per-trial data."""
        if key not in self.derived:
            self.derived[key] = make()
        return cast(T, self.derived[key])


def extracted_row(rec: ExtractedRecord) -> dict[str, Any]:
    """One extracted record as the comparison reads it: its fields (trial_id, replicate, status, model, ...)
    and the schema fields, flattened (a schema field wins over a record field of the same name)."""
    top = rec.model_dump(mode="json", exclude={"fields"})
    return {**top, **rec.fields}


def _torn(out: StudyOutputs, name: str, report: LoadReport) -> None:
    if report.truncated:
        out.notes.append(f"{name}: a torn last line (a write cut short), left out")


def _text(v: Any) -> str:
    """A table cell as the CSV text it came from (3.0 -> "3", missing -> "")."""
    if v is None or (isinstance(v, float) and v != v):
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _conditions_from_tables(study: Study, folder: Path) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name in TABLES:
        path = folder / name
        if not path.exists():
            continue
        try:
            df = pd.read_parquet(path)
        except Exception:  # noqa: BLE001 - an unreadable table only means we look elsewhere
            continue
        if "trial_id" not in df.columns or not set(study.required_columns) <= set(df.columns):
            continue
        cols = [c for c in (*study.required_columns, *study.optional_columns) if c in df.columns]
        for rec in df[["trial_id", *cols]].drop_duplicates("trial_id").to_dict("records"):
            row = {str(k): _text(v) for k, v in rec.items()}
            try:
                cond = study.condition(row)
            except (KeyError, ValueError):
                continue
            if all(cond.values()):
                out.setdefault(row["trial_id"], cond)
    return out


def _conditions_from_csvs(study: Study, cfg: Config | None) -> dict[str, dict[str, str]]:
    if cfg is None:
        return {}
    out: dict[str, dict[str, str]] = {}
    for sample in (False, True):
        try:
            trials = study.load(cfg.study_file(study.name, sample=sample))
        except GraceError:
            continue
        for t in trials:
            cond = study.condition(t)
            if all(cond.values()):
                out.setdefault(t["trial_id"], cond)
    return out


def load_study(folder: Path, study: Study, cfg: Config | None) -> StudyOutputs:
    out = StudyOutputs(model=folder.parent.name, study=study, folder=folder)
    exp2_path = folder / "exp2.jsonl"
    if exp2_path.exists():
        out.exp2_present = True
        ckpt = Checkpoint(exp2_path, Exp2Record)
        recs = ckpt.load(trim=False)
        _torn(out, "exp2.jsonl", ckpt.report)
        for r in recs.values():
            out.model = r.model
            if r.status == "ok":
                out.exp2.append(r)
            else:
                out.exp2_not_ok[r.status] = out.exp2_not_ok.get(r.status, 0) + 1
    ext_path = folder / "extracted.jsonl"
    if ext_path.exists():
        out.exp1_present = True
        extracted = Checkpoint(ext_path, ExtractedRecord)
        out.extracted = [extracted_row(r) for r in extracted.load(trim=False).values()]
        _torn(out, "extracted.jsonl", extracted.report)
        for line in out.extracted:
            if line.get("model"):
                out.model = str(line["model"])
                break
    needed = {r.trial_id for r in out.exp2} | {r["trial_id"] for r in out.extracted}
    conds = _conditions_from_tables(study, folder)
    if needed - conds.keys():
        for k, v in _conditions_from_csvs(study, cfg).items():
            conds.setdefault(k, v)
    out.conditions = {k: conds[k] for k in needed if k in conds}
    unknown = needed - out.conditions.keys()
    out.unknown_trials = len(unknown)
    if unknown:
        out.notes.append(f"{len(unknown)} trial(s) with no known condition (not in the stage tables nor the "
                         f"configured study CSVs), left out: e.g. {sorted(unknown)[0]}")
    return out


def discover(run_dir: Path, studies: Iterable[Study], cfg: Config | None) -> list[StudyOutputs]:
    """Every RUN_DIR/<model>/<study>/ that holds exp2.jsonl or extracted.jsonl, for these studies."""
    studies = list(studies)
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: run folder not found")
    found = []
    for model_dir in sorted(p for p in run_dir.iterdir() if p.is_dir() and p.name not in {"compare", "report"}):
        for study in studies:
            folder = model_dir / study.name
            if any((folder / f).exists() for f in STAGE_FILES):
                found.append(load_study(folder, study, cfg))
    if not found:
        raise DataError(f"{run_dir}: no <model>/<study>/exp2.jsonl or extracted.jsonl to compare "
                        "(run `grace score` and `grace extract` first)")
    return found
