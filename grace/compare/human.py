"""Human baselines: the published figures shipped in data/human/, or a user's own CSV, loaded and validated.

Five CSV kinds, told apart by their header (leading lines starting with `#` are comments, e.g. a citation):
- study 2 proportions (wide): goal, state, [n], and the 8 utterance columns (a row per cell);
- study 2 choices (long):    goal, state, utterance (a row per human choice; proportions are computed);
- study 2 as the authors publish it (Yoon et al.'s speaker-production data): subid, trial, item, goal,
  true_state (heart0..heart3), positivity (neg / no_neg), utterance (terrible / bad / good / amazing), a row
  per human choice; "It wasn't good" is neg + good; proportions are computed;
- study 1 findings:          observe, access, state_a, state_b, humans (yes/no), [note];
- study 1 knowledgeability:  access, mean, [sd] (mean bet out of 100 that the speaker knows).
Every problem is a DataError naming the file, line and column.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grace.errors import DataError
from grace.paths import project_root
from grace.studies.study2 import STATES as STUDY2_STATES
from grace.studies.study2 import UTTERANCES, goal_label

GOALS = ("informative", "social", "both")
CELLS: tuple[tuple[str, str], ...] = tuple((g, s) for g in GOALS for s in STUDY2_STATES)
SUM_TOLERANCE = 0.02  # a proportions row must sum to 1 within this (published figures are rounded)
_STATE_RE = re.compile(r"^\s*([0-3])\s*hearts?\s*$")


def human_dir() -> Path:
    return project_root() / "data" / "human"


@dataclass
class Study2Human:
    """Per goal x state cell the human distribution over the 8 utterances (rows renormalised to sum 1)."""

    source: str
    cells: dict[tuple[str, str], np.ndarray]
    n: dict[tuple[str, str], int | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    """A published pairwise comparison: in condition (access, observe), bets on state_a > bets on state_b?"""

    observe: int
    access: int
    state_a: int
    state_b: int
    humans: bool
    note: str = ""

    @property
    def label(self) -> str:
        return f"observe {self.observe}, access {self.access}: state {self.state_a} > state {self.state_b}"


@dataclass
class Study1Human:
    source: str
    findings: list[Finding]
    knowledgeability: dict[int, tuple[float, float | None]]  # access -> (mean out of 100, sd)
    knowledge_source: str = ""


@dataclass
class HumanData:
    study1: Study1Human | None = None
    study2: Study2Human | None = None


@dataclass
class _Table:
    path: Path
    header: list[str]
    rows: list[tuple[int, dict[str, str]]]  # (line number, row)


def _read_table(path: Path) -> _Table:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 (byte offset {e.start})") from None
    lines = text.splitlines()
    skip = 0
    while skip < len(lines) and (lines[skip].startswith("#") or not lines[skip].strip()):
        skip += 1
    reader = csv.reader(io.StringIO("\n".join(lines[skip:])), strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataError(f"{path}: no header (empty file or only comments)") from None
    except csv.Error as e:
        raise DataError(f"{path}: line {skip + 1}: {e}") from None
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataError(f"{path}: line {skip + 1}: duplicated column {dupes[0]!r}")
    rows = []
    try:
        for values in reader:
            line = skip + reader.line_num
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise DataError(f"{path}: line {line}: {len(values)} fields, the header has {len(header)}")
            rows.append((line, {h: v.strip() for h, v in zip(header, values, strict=True)}))
    except csv.Error as e:
        raise DataError(f"{path}: line {skip + reader.line_num}: broken CSV quoting: {e}") from None
    if not rows:
        raise DataError(f"{path}: no data rows")
    return _Table(path, header, rows)


def _where(t: _Table, line: int, col: str) -> str:
    return f"{t.path}: line {line}, column {col!r}"


def _goal(t: _Table, line: int, value: str) -> str:
    g = goal_label(value)
    if g is None:
        raise DataError(f"{_where(t, line, 'goal')}: {value!r} is not informative, social or both")
    return g


def _state(t: _Table, line: int, value: str) -> str:
    m = _STATE_RE.match(value)
    if not m:
        raise DataError(f"{_where(t, line, 'state')}: {value!r} is not '0 hearts' .. '3 hearts'")
    return STUDY2_STATES[int(m.group(1))]


def _number(t: _Table, line: int, col: str, value: str, lo: float, hi: float) -> float:
    try:
        x = float(value)
    except ValueError:
        raise DataError(f"{_where(t, line, col)}: {value!r} is not a number") from None
    if not np.isfinite(x) or not lo <= x <= hi:
        raise DataError(f"{_where(t, line, col)}: {value} is outside {lo:g}..{hi:g}")
    return x


def _int(t: _Table, line: int, col: str, value: str, allowed: range) -> int:
    if not value.lstrip("-").isdigit() or int(value) not in allowed:
        span = f"{allowed.start}..{allowed.stop - 1}"
        raise DataError(f"{_where(t, line, col)}: {value!r} is not a whole number in {span}")
    return int(value)


def _study2_wide(t: _Table) -> Study2Human:
    cells: dict[tuple[str, str], np.ndarray] = {}
    n: dict[tuple[str, str], int | None] = {}
    for line, row in t.rows:
        key = (_goal(t, line, row["goal"]), _state(t, line, row["state"]))
        if key in cells:
            raise DataError(f"{t.path}: line {line}: cell {key[0]} / {key[1]} appears twice")
        p = np.array([_number(t, line, u, row[u], 0.0, 1.0) for u in UTTERANCES])
        if abs(p.sum() - 1.0) > SUM_TOLERANCE:
            raise DataError(f"{t.path}: line {line}: the 8 proportions sum to {p.sum():.3f}, not 1 "
                            f"(within {SUM_TOLERANCE})")
        cells[key] = p / p.sum()
        n[key] = int(_number(t, line, "n", row["n"], 1, 1e9)) if row.get("n") else None
    return Study2Human(str(t.path), cells, n)


def _study2_long(t: _Table) -> Study2Human:
    counts: dict[tuple[str, str], np.ndarray] = {}
    for line, row in t.rows:
        key = (_goal(t, line, row["goal"]), _state(t, line, row["state"]))
        u = row["utterance"]
        if u not in UTTERANCES:
            raise DataError(f"{_where(t, line, 'utterance')}: {u!r} is not one of the 8 utterances "
                            f"({', '.join(UTTERANCES)})")
        counts.setdefault(key, np.zeros(len(UTTERANCES)))[UTTERANCES.index(u)] += 1
    cells = {k: c / c.sum() for k, c in counts.items()}
    return Study2Human(str(t.path), cells, {k: int(c.sum()) for k, c in counts.items()})


RAW_STATES = {f"heart{i}": STUDY2_STATES[i] for i in range(4)}
RAW_POSITIVITY = {"no_neg": "It was", "neg": "It wasn't"}
RAW_ADJECTIVES = ("terrible", "bad", "good", "amazing")


def _raw_value(t: _Table, line: int, col: str, value: str, allowed: tuple[str, ...] | dict[str, str]) -> str:
    v = value.strip().lower()
    if v not in allowed:
        raise DataError(f"{_where(t, line, col)}: {value!r} is not one of {', '.join(allowed)}")
    return v


def _study2_raw(t: _Table) -> Study2Human:
    """The authors' speaker-production file: one row per choice, the utterance in two columns."""
    counts: dict[tuple[str, str], np.ndarray] = {}
    for line, row in t.rows:
        goal = _goal(t, line, row["goal"])
        state = RAW_STATES[_raw_value(t, line, "true_state", row["true_state"], RAW_STATES)]
        lead = RAW_POSITIVITY[_raw_value(t, line, "positivity", row["positivity"], RAW_POSITIVITY)]
        adjective = _raw_value(t, line, "utterance", row["utterance"], RAW_ADJECTIVES)
        u = f"{lead} {adjective}"
        counts.setdefault((goal, state), np.zeros(len(UTTERANCES)))[UTTERANCES.index(u)] += 1
    cells = {k: c / c.sum() for k, c in counts.items()}
    return Study2Human(str(t.path), cells, {k: int(c.sum()) for k, c in counts.items()})


def _findings(t: _Table) -> list[Finding]:
    out = []
    for line, row in t.rows:
        access = _int(t, line, "access", row["access"], range(1, 4))
        observe = _int(t, line, "observe", row["observe"], range(0, access + 1))
        a = _int(t, line, "state_a", row["state_a"], range(0, 4))
        b = _int(t, line, "state_b", row["state_b"], range(0, 4))
        if a == b:
            raise DataError(f"{t.path}: line {line}: state_a and state_b are both {a}")
        h = row["humans"].lower()
        if h not in {"yes", "no"}:
            raise DataError(f"{_where(t, line, 'humans')}: {row['humans']!r} is not yes or no")
        out.append(Finding(observe, access, a, b, h == "yes", row.get("note", "")))
    return out


def _knowledgeability(t: _Table) -> dict[int, tuple[float, float | None]]:
    out: dict[int, tuple[float, float | None]] = {}
    for line, row in t.rows:
        access = _int(t, line, "access", row["access"], range(1, 4))
        if access in out:
            raise DataError(f"{t.path}: line {line}: access {access} appears twice")
        sd = _number(t, line, "sd", row["sd"], 0, 100) if row.get("sd") else None
        out[access] = (_number(t, line, "mean", row["mean"], 0, 100), sd)
    return out


KINDS = {
    "study2-proportions": {"goal", "state", *UTTERANCES},
    "study2-raw": {"goal", "true_state", "positivity", "utterance"},
    "study2-choices": {"goal", "state", "utterance"},
    "study1-findings": {"observe", "access", "state_a", "state_b", "humans"},
    "study1-knowledgeability": {"access", "mean"},
}


def file_kind(t: _Table) -> str:
    cols = set(t.header)
    for kind, needed in KINDS.items():
        if needed <= cols:
            return kind
    if {"goal", "state"} <= cols:
        missing = [u for u in UTTERANCES if u not in cols]
        raise DataError(f"{t.path}: header: a study 2 file needs either the 8 utterance columns (missing "
                        f"{missing[0]!r}) or an 'utterance' column (one row per choice)")
    if {"goal", "true_state"} <= cols:
        missing = [c for c in ("positivity", "utterance") if c not in cols]
        raise DataError(f"{t.path}: header: the authors' study 2 form needs goal, true_state, positivity and "
                        f"utterance (missing {missing[0]!r})")
    raise DataError(f"{t.path}: header: not a known human-data format (need goal,state + 8 utterance columns; "
                    "goal,state,utterance; goal,true_state,positivity,utterance; observe,access,state_a,state_b,"
                    "humans; or access,mean,sd); see docs/compare.md")


def load_human(paths: list[Path] | None = None) -> HumanData:
    """The shipped baselines, with any user files replacing the part (study/kind) they provide."""
    d = human_dir()
    data = HumanData(
        study1=Study1Human(str(d / "study1_findings.csv"), [], {}, str(d / "study1_knowledgeability.csv")),
    )
    defaults = [d / "study2_production.csv", d / "study1_findings.csv", d / "study1_knowledgeability.csv"]
    for path in [*defaults, *(Path(p) for p in paths or [])]:
        t = _read_table(path)
        kind = file_kind(t)
        assert data.study1 is not None
        if kind == "study2-proportions":
            data.study2 = _study2_wide(t)
        elif kind == "study2-choices":
            data.study2 = _study2_long(t)
        elif kind == "study2-raw":
            data.study2 = _study2_raw(t)
        elif kind == "study1-findings":
            data.study1.findings, data.study1.source = _findings(t), str(path)
        else:
            data.study1.knowledgeability, data.study1.knowledge_source = _knowledgeability(t), str(path)
    return data
