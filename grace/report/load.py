"""Reading a run folder for the report: which study folders (<model>/<study>/) exist, and their records as tables."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pandas as pd

from grace.checkpoint import Checkpoint, LoadReport
from grace.records import Exp1Record, Exp2Record, ExtractedRecord, Record, ServerWait
from grace.server_waits import read_waits
from grace.studies.base import Study


@dataclass
class StudyData:
    """One model x study of a run: the latest record per key, raw line counts, and the design cells."""

    model: str
    study: Study
    path: Path
    records: dict[str, dict[str, Record]] = field(default_factory=dict)  # experiment -> key -> record
    reports: dict[str, LoadReport] = field(default_factory=dict)
    done_lines: dict[str, dict[str, int]] = field(default_factory=dict)  # experiment -> key -> lines not "error"
    conditions: pd.DataFrame | None = None  # trial_id + design columns
    server_waits: list[ServerWait] = field(default_factory=list)  # server-waits.jsonl (grace.server_waits)

    # Each experiment's records as their own type (FILES: each checkpoint is read with its record type).
    @property
    def exp1(self) -> dict[str, Exp1Record]:
        return _of(self.records.get("exp1"), Exp1Record)

    @property
    def exp2(self) -> dict[str, Exp2Record]:
        return _of(self.records.get("exp2"), Exp2Record)

    @property
    def extracted(self) -> dict[str, ExtractedRecord]:
        return _of(self.records.get("extracted"), ExtractedRecord)


R = TypeVar("R", bound=Record)


def _of(records: dict[str, Record] | None, kind: type[R]) -> dict[str, R]:
    return {k: r for k, r in (records or {}).items() if isinstance(r, kind)}


FILES: dict[str, tuple[str, type[Record]]] = {
    "exp1": ("exp1.jsonl", Exp1Record),
    "exp2": ("exp2.jsonl", Exp2Record),
    "extracted": ("extracted.jsonl", ExtractedRecord),
}


def conditions_table(study_dir: Path, study: Study) -> pd.DataFrame | None:
    """trial_id and the study's design cell columns (`Study.condition_columns`) from the stage's tables."""
    for name, reader in (("exp1.parquet", pd.read_parquet), ("exp1.csv", pd.read_csv),
                         ("exp2.parquet", pd.read_parquet), ("exp2.csv", pd.read_csv)):
        p = study_dir / name
        if p.exists():
            try:
                df = reader(p)
            except (OSError, ValueError):
                continue
            cols = [c for c in study.condition_columns if c in df.columns]
            if "trial_id" in df.columns and cols:
                return df[["trial_id", *cols]].astype(str).drop_duplicates("trial_id")
    return None


def _read_only_load(ckpt: Checkpoint) -> dict[str, Record]:
    """Checkpoint.load without touching the file (it trims a torn last line, which a report must not do)."""
    return ckpt.load(trim=False)


def load_study(model: str, study: Study, path: Path) -> StudyData:
    data = StudyData(model, study, path)
    for exp, (name, rtype) in FILES.items():
        p = path / name
        if not p.exists():
            continue
        ckpt = Checkpoint(p, rtype)
        data.records[exp] = _read_only_load(ckpt)
        data.reports[exp] = ckpt.report
        data.done_lines[exp] = dict(ckpt.report.done_lines)  # a checkpoint may hold a failed line and its redo
    data.conditions = conditions_table(path, study)
    data.server_waits = read_waits(path)
    return data


def discover(run_dir: Path, studies: Iterable[Study]) -> list[StudyData]:
    """Every <model>/<study>/ folder of the run, for these studies, holding at least one stage file."""
    out = []
    studies = list(studies)
    for model_dir in sorted(p for p in Path(run_dir).iterdir() if p.is_dir() and p.name != "report"):
        for study in studies:
            d = model_dir / study.name
            if d.is_dir() and any((d / name).exists() for name, _ in FILES.values()):
                out.append(load_study(model_dir.name, study, d))
    return out
