"""Every trial of a run folder as one row for the trial viewer: what was sent, what came back, what was read.

A row is one model x study x trial x replicate (Exp 1's key), in the study itself or in the model's preflight;
it joins the Exp 1 record (the messages as sent, the reply, its reasoning, status and finish reason), the
extracted record (status, method, fields) and the trial's Exp 2 record (per question the options'
probabilities, argmax and option mass, and the scored prompt), with the trial's design cell. A study run
without Exp 1 gives one row per scored trial.

The records are read as JSON objects (grace.checkpoint.read_objects), not through the pydantic records: the
viewer shows whatever a run wrote, fields of a later or earlier Grace included (a run from before prompt
variants has no `prompt_variant`; its rows have none). Each prompt wording of a trial is a row of its own, as in
the records' keys (`<trial_id>#<replicate>@<variant>`). The reading policy is every JSONL reader's: a torn last
line is left out and counted, any other bad line is an error. As in every checkpoint, a later line for a key
replaces an earlier one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grace.checkpoint import LoadReport, read_objects
from grace.errors import DataError
from grace.records import MAIN_VARIANT, variant_key
from grace.report.load import conditions_table
from grace.studies.base import Study
from grace.studies.registry import STUDIES

STAGE_FILES = {"exp1": "exp1.jsonl", "exp2": "exp2.jsonl", "extracted": "extracted.jsonl"}
# Record fields every row shows in its own place; anything else a record carries is shown under "more".
COMMON = {"trial_id", "model", "model_revision", "study", "status", "error", "attempts", "started_at",
          "finished_at", "replicate", "prompt_version", "prompt_variant"}
EXP1_SHOWN = COMMON | {"messages", "response", "reasoning", "finish_reason", "sampling", "served_model",
                       "prompt_tokens", "completion_tokens", "reasoning_tokens", "latency_s"}
EXP2_SHOWN = COMMON | {"questions", "rotations", "path", "requests", "reads", "sequences", "latency_s"}
EXTRACTED_SHOWN = COMMON | {"method", "extraction_model", "fields"}


@dataclass
class Unreadable:
    """A stage file's torn last line (a crash mid-write): counted, left out."""

    path: str
    lines: list[int] = field(default_factory=list)


def read_stage_file(path: Path, unreadable: list[Unreadable] | None = None) -> dict[str, dict[str, Any]]:
    """key -> the last record of that key in a JSONL stage file (key: trial_id, and #replicate when present),
    under Grace's one reading policy (grace.checkpoint): a torn last line is left out and listed in
    `unreadable`; any other bad line, or a record without a trial_id, is a DataError naming the file and line."""
    out: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return out
    report = LoadReport()
    for i, rec in read_objects(path, report):
        if "trial_id" not in rec:
            raise DataError(f"{path}: line {i}: a record without a trial_id")
        key = str(rec["trial_id"]) + (f"#{rec['replicate']}" if "replicate" in rec else "")
        out[variant_key(key, _variant(rec) or MAIN_VARIANT)] = rec
    if report.truncated and unreadable is not None:  # the torn line is the file's last
        unreadable.append(Unreadable(str(path), [path.read_bytes().count(b"\n") + 1]))
    return out


def _variant(rec: dict[str, Any] | None) -> str | None:
    """The prompt wording a record answers (None in a run from before prompt variants)."""
    v = rec.get("prompt_variant") if rec else None
    return None if v is None else str(v)


def _replicate(rec: dict[str, Any]) -> int:
    rep = rec.get("replicate", 0)
    return rep if isinstance(rep, int) else int(rep) if str(rep).isdigit() else 0


def _rest(rec: dict[str, Any], shown: set[str]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if k not in shown and v not in (None, "", [], {})}


def _exp1(rec: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": rec.get("status"), "error": rec.get("error"), "messages": rec.get("messages") or [],
        "response": rec.get("response"), "reasoning": rec.get("reasoning"), "finish": rec.get("finish_reason"),
        "prompt_tokens": rec.get("prompt_tokens"), "completion_tokens": rec.get("completion_tokens"),
        "reasoning_tokens": rec.get("reasoning_tokens"), "latency_s": rec.get("latency_s"),
        "sampling": rec.get("sampling") or {}, "prompt_version": rec.get("prompt_version"),
        "attempts": rec.get("attempts"), "more": _rest(rec, EXP1_SHOWN),
    }


def _question(q: dict[str, Any]) -> dict[str, Any]:
    return {"options": q.get("options") or list((q.get("probs") or {}).keys()), "probs": q.get("probs") or {},
            "argmax": q.get("argmax"), "option_mass": q.get("option_mass"), "prompt": q.get("prompt"),
            "entropy": q.get("entropy")}


def _rotation(q: dict[str, Any]) -> dict[str, Any]:
    """One rotation of a question's option list, as sent: the order listed, what was listed first, the top choice
    and its probability, the option mass. Side by side they show whether the top choice follows the option or
    the position (the record's `rotations`, compact)."""
    order = [str(o) for o in q.get("options") or []]
    probs = q.get("probs") or {}
    top = q.get("argmax")
    return {"order": order, "first": order[0] if order else None, "argmax": top,
            "p_argmax": probs.get(top) if top is not None else None, "option_mass": q.get("option_mass")}


def _exp2(rec: dict[str, Any]) -> dict[str, Any]:
    questions = rec.get("questions") or {}
    rotations = rec.get("rotations") or {}
    return {
        "status": rec.get("status"), "error": rec.get("error"), "path": rec.get("path"),
        "questions": {name: _question(q) for name, q in questions.items() if isinstance(q, dict)},
        "rotations": {name: [_rotation(q) for q in rots if isinstance(q, dict)]
                      for name, rots in rotations.items() if isinstance(rots, list)},
        "option_mass": min((q["option_mass"] for q in questions.values()
                            if isinstance(q, dict) and isinstance(q.get("option_mass"), int | float)), default=None),
        "prompt_version": rec.get("prompt_version"), "latency_s": rec.get("latency_s"),
        "more": _rest(rec, EXP2_SHOWN),
    }


def _extracted(rec: dict[str, Any]) -> dict[str, Any]:
    return {"status": rec.get("status"), "method": rec.get("method"), "model": rec.get("extraction_model"),
            "fields": rec.get("fields") or {}, "error": rec.get("error"), "more": _rest(rec, EXTRACTED_SHOWN)}


def _conditions(stage_dir: Path, study: Study) -> dict[str, dict[str, str]]:
    """trial_id -> the design cell (the study's condition columns) from the stage's tables."""
    table = conditions_table(stage_dir, study)
    if table is None:
        return {}
    cols = [c for c in table.columns if c != "trial_id"]
    return {str(r["trial_id"]): {c: str(r[c]) for c in cols} for r in table.to_dict("records")}


def stage_rows(stage_dir: Path, *, run: str, model: str, study: Study, phase: str,
               unreadable: list[Unreadable] | None = None) -> list[dict[str, Any]]:
    """The rows of one model x study folder (the study's own, or its preflight's)."""
    recs = {exp: read_stage_file(stage_dir / name, unreadable) for exp, name in STAGE_FILES.items()}
    cond = _conditions(stage_dir, study)
    exp2_by_cell = {(str(r["trial_id"]), _variant(r)): r for r in recs["exp2"].values()}
    cells: dict[str, tuple[str, int, str | None]] = {}  # row key -> (trial, replicate, prompt variant)
    for name in ("exp1", "extracted"):
        for k, r in recs[name].items():
            cells.setdefault(k, (str(r["trial_id"]), _replicate(r), _variant(r)))
    for trial, variant in exp2_by_cell:  # a wording scored in Exp 2 only (or a study run without Exp 1)
        if not any((t, v) == (trial, variant) for t, _, v in cells.values()):
            cells[variant_key(f"{trial}#0", variant or MAIN_VARIANT)] = (trial, 0, variant)
    first_rep: dict[tuple[str, str | None], str] = {}
    for k, (trial, _rep, variant) in sorted(cells.items(), key=lambda kv: kv[1][1]):
        first_rep.setdefault((trial, variant), k)
    rows = []
    for key, (trial, rep, variant) in cells.items():
        e1, ex = recs["exp1"].get(key), recs["extracted"].get(key)
        # one row per trial and wording carries its Exp 2 record
        e2 = exp2_by_cell.get((trial, variant)) if first_rep.get((trial, variant)) == key else None
        rows.append({
            "run": run, "model": model, "study": study.name, "phase": phase,
            "trial": trial, "replicate": rep, "variant": variant,
            "condition": cond.get(trial, {}),
            "exp1": _exp1(e1) if e1 else None, "extracted": _extracted(ex) if ex else None,
            "exp2": _exp2(e2) if e2 else None,
        })
    return rows


def _stage_dirs(run_dir: Path) -> Iterator[tuple[str, Study, str, Path]]:
    """(model folder, study, phase, folder) of every study folder in a run folder (of a registered study)."""
    for model_dir in sorted(p for p in run_dir.iterdir() if p.is_dir()):
        for phase, base in (("study", model_dir), ("preflight", model_dir / "preflight")):
            for study in STUDIES.values():
                d = base / study.name
                if d.is_dir() and any((d / f).exists() for f in STAGE_FILES.values()):
                    yield model_dir.name, study, phase, d


def run_rows(run_dir: Path, unreadable: list[Unreadable] | None = None) -> list[dict[str, Any]]:
    """Every trial row of a run folder, study trials before preflight trials, by model and study."""
    run_dir = Path(run_dir)
    rows: list[dict[str, Any]] = []
    for model, study, phase, d in _stage_dirs(run_dir):
        rows += stage_rows(d, run=run_dir.name, model=model, study=study, phase=phase, unreadable=unreadable)
    return rows
