"""Study 2's human data: per goal x state cell the distribution over the 8 utterances (Yoon et al. 2020), as
shipped in data/human/ or a user's file, in one of three forms told apart by the header:
- proportions (wide): goal, state, [n], and the 8 utterance columns (a row per cell);
- choices (long):     goal, state, utterance (a row per human choice; proportions are computed);
- as the authors publish it (Yoon et al.'s speaker-production data): subid, trial, item, goal, true_state
  (heart0..heart3), positivity (neg / no_neg), utterance (terrible / bad / good / amazing), a row per human
  choice; "It wasn't good" is neg + good; proportions are computed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grace.compare.human import Table, number, where
from grace.errors import DataError
from grace.studies.study2.goals import LABELS
from grace.studies.study2.study import QUALITIES, STATES, UTTERANCES, goal_label

CELLS: tuple[tuple[str, str], ...] = tuple((g, s) for g in LABELS for s in STATES)
SUM_TOLERANCE = 0.02  # a proportions row must sum to 1 within this (published figures are rounded)
_STATE_RE = re.compile(r"^\s*([0-3])\s*hearts?\s*$")
KINDS = {
    "study2-proportions": frozenset({"goal", "state", *UTTERANCES}),
    "study2-raw": frozenset({"goal", "true_state", "positivity", "utterance"}),
    "study2-choices": frozenset({"goal", "state", "utterance"}),
}
FORMATS = ("goal,state + 8 utterance columns", "goal,state,utterance", "goal,true_state,positivity,utterance")


@dataclass
class Study2Human:
    """Per goal x state cell the human distribution over the 8 utterances (rows renormalised to sum 1)."""

    source: str
    cells: dict[tuple[str, str], np.ndarray]
    n: dict[tuple[str, str], int | None] = field(default_factory=dict)


def _goal(t: Table, line: int, value: str) -> str:
    g = goal_label(value)
    if g is None:
        raise DataError(f"{where(t, line, 'goal')}: {value!r} is not informative, social or both")
    return g


def _state(t: Table, line: int, value: str) -> str:
    m = _STATE_RE.match(value)
    if not m:
        raise DataError(f"{where(t, line, 'state')}: {value!r} is not '0 hearts' .. '3 hearts'")
    return STATES[int(m.group(1))]


def _study2_wide(t: Table) -> Study2Human:
    cells: dict[tuple[str, str], np.ndarray] = {}
    n: dict[tuple[str, str], int | None] = {}
    for line, row in t.rows:
        key = (_goal(t, line, row["goal"]), _state(t, line, row["state"]))
        if key in cells:
            raise DataError(f"{t.path}: line {line}: cell {key[0]} / {key[1]} appears twice")
        p = np.array([number(t, line, u, row[u], 0.0, 1.0) for u in UTTERANCES])
        if abs(p.sum() - 1.0) > SUM_TOLERANCE:
            raise DataError(f"{t.path}: line {line}: the 8 proportions sum to {p.sum():.3f}, not 1 "
                            f"(within {SUM_TOLERANCE})")
        cells[key] = p / p.sum()
        n[key] = int(number(t, line, "n", row["n"], 1, 1e9)) if row.get("n") else None
    return Study2Human(str(t.path), cells, n)


def _study2_long(t: Table) -> Study2Human:
    counts: dict[tuple[str, str], np.ndarray] = {}
    for line, row in t.rows:
        key = (_goal(t, line, row["goal"]), _state(t, line, row["state"]))
        u = row["utterance"]
        if u not in UTTERANCES:
            raise DataError(f"{where(t, line, 'utterance')}: {u!r} is not one of the 8 utterances "
                            f"({', '.join(UTTERANCES)})")
        counts.setdefault(key, np.zeros(len(UTTERANCES)))[UTTERANCES.index(u)] += 1
    cells = {k: c / c.sum() for k, c in counts.items()}
    return Study2Human(str(t.path), cells, {k: int(c.sum()) for k, c in counts.items()})


RAW_STATES = {f"heart{i}": STATES[i] for i in range(4)}
RAW_POSITIVITY = {"no_neg": "It was", "neg": "It wasn't"}


def _raw_value(t: Table, line: int, col: str, value: str, allowed: tuple[str, ...] | dict[str, str]) -> str:
    v = value.strip().lower()
    if v not in allowed:
        raise DataError(f"{where(t, line, col)}: {value!r} is not one of {', '.join(allowed)}")
    return v


def _study2_raw(t: Table) -> Study2Human:
    """The authors' speaker-production file: one row per choice, the utterance in two columns."""
    counts: dict[tuple[str, str], np.ndarray] = {}
    for line, row in t.rows:  # the authors' own labels exactly: a raw file is data, not a lab's wording
        goal = _raw_value(t, line, "goal", row["goal"], LABELS)
        state = RAW_STATES[_raw_value(t, line, "true_state", row["true_state"], RAW_STATES)]
        lead = RAW_POSITIVITY[_raw_value(t, line, "positivity", row["positivity"], RAW_POSITIVITY)]
        adjective = _raw_value(t, line, "utterance", row["utterance"], QUALITIES)
        u = f"{lead} {adjective}"
        counts.setdefault((goal, state), np.zeros(len(UTTERANCES)))[UTTERANCES.index(u)] += 1
    cells = {k: c / c.sum() for k, c in counts.items()}
    return Study2Human(str(t.path), cells, {k: int(c.sum()) for k, c in counts.items()})


def default_files(folder: Path) -> list[Path]:
    return [folder / "study2_production.csv"]


def read(kind: str, t: Table) -> Study2Human:
    """The human data of this file (it replaces any read before)."""
    readers = {"study2-proportions": _study2_wide, "study2-choices": _study2_long, "study2-raw": _study2_raw}
    return readers[kind](t)


def refuse_header(t: Table) -> None:
    """A header with study 2's design columns but neither the utterance columns nor all of the authors' form."""
    cols = set(t.header)
    if {"goal", "state"} <= cols:
        missing = [u for u in UTTERANCES if u not in cols]
        raise DataError(f"{t.path}: header: a study 2 file needs either the 8 utterance columns (missing "
                        f"{missing[0]!r}) or an 'utterance' column (one row per choice)")
    if {"goal", "true_state"} <= cols:
        missing = [c for c in ("positivity", "utterance") if c not in cols]
        raise DataError(f"{t.path}: header: the authors' study 2 form needs goal, true_state, positivity and "
                        f"utterance (missing {missing[0]!r})")
