"""Reading a run folder for the all-models tables: every model x study's records, each trial's input row, and each
model's metadata (config/models.yaml as snapshotted in run.json, and the run's profile).

The input rows come from the stage tables (exp1/exp2 .parquet, else .csv), which hold the input CSV's columns in
the file's order up to `trial_id` (the row Grace read, then its key: grace/studies/base.py load_csv); a trial
found in none of them is looked up in the study CSV run.json names, and otherwise keeps empty stimulus columns,
with a note. Records are the checkpoints (the latest line per key), read without touching the files.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from grace.analysis.columns import ModelMeta
from grace.checkpoint import Checkpoint
from grace.config import PROFILES, ModelConfig, ModelsFile, load_config
from grace.errors import GraceError
from grace.records import Exp1Record, Exp2Record, ExtractedRecord, Record
from grace.studies import Study

NOT_MODELS = {"report", "compare", "analysis", "logs"}  # run-folder entries that are not <model>/ folders
STAGE_FILES = ("exp1.jsonl", "exp2.jsonl", "extracted.jsonl")
TRIAL_TABLES: tuple[tuple[str, Callable[[Path], pd.DataFrame]], ...] = (
    ("exp1.parquet", pd.read_parquet), ("exp2.parquet", pd.read_parquet),
    ("exp1.csv", lambda p: pd.read_csv(p, dtype=str, keep_default_na=False)),
    ("exp2.csv", lambda p: pd.read_csv(p, dtype=str, keep_default_na=False)),
)


@dataclass
class Trials:
    """A study's input rows by trial id, in the input's order, and the input's columns in the file's order."""

    columns: list[str] = field(default_factory=list)
    rows: dict[str, dict[str, str]] = field(default_factory=dict)

    def add(self, columns: list[str], rows: list[dict[str, str]]) -> None:
        self.columns += [c for c in columns if c not in self.columns]
        for row in rows:
            self.rows.setdefault(row["trial_id"], row)


@dataclass
class StudyRecords:
    """One model x study of the run: its records by key."""

    model: str  # as recorded (config/models.yaml's name); the folder name when no record says
    folder: Path
    study: Study
    exp1: dict[str, Exp1Record] = field(default_factory=dict)
    exp2: dict[str, Exp2Record] = field(default_factory=dict)
    extracted: dict[str, ExtractedRecord] = field(default_factory=dict)


@dataclass
class RunRecords:
    stages: list[StudyRecords]
    trials: dict[str, Trials]  # study name -> its input rows, over every model of the run
    meta: dict[str, ModelMeta]  # model name -> its metadata
    notes: list[str] = field(default_factory=list)


def _text(v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    return str(v)


def trial_table(folder: Path) -> tuple[list[str], list[dict[str, str]]] | None:
    """The input columns and rows of a study folder's first readable table (None: no table holds them)."""
    for name, read in TRIAL_TABLES:
        path = folder / name
        if not path.exists():
            continue
        try:
            df = read(path)
        except (OSError, ValueError):
            continue
        cols = [str(c) for c in df.columns]
        if "trial_id" not in cols or cols.index("trial_id") == 0:
            continue
        keep = cols[: cols.index("trial_id") + 1]
        rows = [{str(k): _text(v) for k, v in rec.items()}
                for rec in df[keep].drop_duplicates("trial_id").to_dict("records")]
        return keep[:-1], rows
    return None


def _load(path: Path, kind: type[Record], notes: list[str]) -> dict[str, Any]:
    if not path.exists():
        return {}
    ckpt = Checkpoint(path, kind)
    records = ckpt.load(trim=False)  # the reading policy: any bad line but a torn last one is a DataError
    if ckpt.report.truncated:
        notes.append(f"{path}: a torn last line (a write cut short), left out")
    return records


def read_study(folder: Path, study: Study, notes: list[str]) -> StudyRecords:
    st = StudyRecords(model=folder.parent.name, folder=folder, study=study)
    st.exp1 = _load(folder / "exp1.jsonl", Exp1Record, notes)
    st.exp2 = _load(folder / "exp2.jsonl", Exp2Record, notes)
    st.extracted = _load(folder / "extracted.jsonl", ExtractedRecord, notes)
    first = next((r for recs in (st.exp1, st.exp2, st.extracted) for r in recs.values()), None)
    if first is not None:
        st.model = first.model
    return st


def run_json(run_dir: Path) -> dict[str, Any]:
    try:
        return dict(json.loads((run_dir / "run.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def model_configs(meta: dict[str, Any], notes: list[str]) -> dict[str, ModelConfig]:
    """The models of run.json's config snapshot, else of the current config (empty when neither loads)."""
    snap = (meta.get("config") or {}).get("models")
    if snap:
        try:
            return ModelsFile.model_validate(snap).models
        except ValidationError as e:
            notes.append(f"run.json: its config snapshot does not validate ({e.error_count()} error(s)); the "
                         "model columns come from the current config/models.yaml")
    try:
        return load_config().models
    except (GraceError, OSError) as e:
        notes.append(f"no model metadata: config/models.yaml does not load ({e})")
        return {}


def model_meta(name: str, configs: dict[str, ModelConfig], run_profile: str | None) -> ModelMeta:
    cfg = configs.get(name) or next((m for m in configs.values() if m.name == name), None)
    profile = run_profile
    if profile is None and cfg is not None and len(cfg.profiles) == 1:
        profile = next(iter(cfg.profiles))  # the one profile it has is the one it ran on
    return ModelMeta(name, cfg, profile)


def _from_study_csv(study: Study, meta: dict[str, Any]) -> tuple[list[str], list[dict[str, str]]] | None:
    """The study CSV the run read (run.json: its config snapshot and `sample`), for trials no stage table holds."""
    params = meta.get("params") or {}
    if "sample" not in params:
        return None
    try:
        path = load_config().study_file(study.name, sample=bool(params["sample"]))
        trials = study.load(path)
    except (GraceError, OSError):
        return None
    return [c for c in trials[0] if c != "trial_id"], list(trials)


def read_run(run_dir: Path, studies: Iterable[Study]) -> RunRecords:
    """Every <model>/<study>/ of the run (of these studies) with a stage file, in the run's model order
    (run.json), else by name."""
    run_dir = Path(run_dir)
    studies = list(studies)
    meta = run_json(run_dir)
    notes: list[str] = []
    stages: list[StudyRecords] = []
    trials: dict[str, Trials] = {}
    folders = sorted(p for p in run_dir.iterdir() if p.is_dir() and p.name not in NOT_MODELS)
    for model_dir in folders:
        for study in studies:
            name = study.name
            folder = model_dir / name
            if not any((folder / f).exists() for f in STAGE_FILES):
                continue
            stages.append(read_study(folder, study, notes))
            table = trial_table(folder)
            if table is not None:
                trials.setdefault(name, Trials()).add(*table)
    order = list((meta.get("params") or {}).get("models") or meta.get("models") or [])
    stages.sort(key=lambda s: (order.index(s.model) if s.model in order else len(order), s.model))
    for st in stages:
        t = trials.setdefault(st.study.name, Trials())
        keys = {r.trial_id for recs in (st.exp1, st.exp2, st.extracted) for r in recs.values()}
        if keys - t.rows.keys() and (found := _from_study_csv(st.study, meta)) is not None:
            t.add(*found)
            notes.append(f"{st.model}/{st.study.name}: trials missing from the stage tables read from the study "
                         "CSV that run.json names")
        if missing := keys - t.rows.keys():
            notes.append(f"{st.model}/{st.study.name}: {len(missing)} trial(s) whose input row was found nowhere "
                         f"keep empty stimulus columns (e.g. {sorted(missing)[0]})")
    profile = (meta.get("params") or {}).get("profile")
    configs = model_configs(meta, notes)
    metas = {st.model: model_meta(st.model, configs, profile if profile in PROFILES else None) for st in stages}
    for name, m in metas.items():
        if m.config is None:
            notes.append(f"{name}: not in config/models.yaml: its model columns are empty")
    return RunRecords(stages, trials, metas, notes)


__all__ = ["RunRecords", "StudyRecords", "Trials", "read_run", "trial_table"]
