"""Study 2's human data: per goal x state cell the distribution over the 8 utterances (Yoon et al. 2020), as
shipped in data/human/ or a user's file, in one of three forms told apart by the header:
- proportions (wide): goal, state, [n], and the 8 utterance columns (a row per cell);
- choices (long):     goal, state, utterance (a row per human choice; proportions are computed);
- as the authors publish it (Yoon et al.'s speaker-production data): subid, trial, item, goal, true_state
  (heart0..heart3), positivity (neg / no_neg), utterance (terrible / bad / good / amazing), a row per human
  choice; "It wasn't good" is neg + good; proportions are computed, and with `subid` (the participant) the
  humans' noise ceiling and the intervals of their own findings (grace/studies/study2/ceiling.py).
Beside the proportions, two shipped files of published figures: the findings (finding, first, second,
difference, ci_low, ci_high) and the noise ceiling (measure, value, ci_low, ci_high, splits, participants). A
file of the proportions or choices replaces the human data whole: the published figures then no longer apply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from grace.compare.human import Table, number, where
from grace.errors import DataError
from grace.studies.study2.ceiling import FINDINGS_BOOT, Ceiling, Participants, finding_intervals, noise_ceiling
from grace.studies.study2.findings import FINDINGS, counts_effect
from grace.studies.study2.goals import LABELS
from grace.studies.study2.study import QUALITIES, STATES, UTTERANCES, goal_label

CELLS: tuple[tuple[str, str], ...] = tuple((g, s) for g in LABELS for s in STATES)
SUM_TOLERANCE = 0.02  # a proportions row must sum to 1 within this (published figures are rounded)
_STATE_RE = re.compile(r"^\s*([0-3])\s*hearts?\s*$")
KINDS = {
    "study2-proportions": frozenset({"goal", "state", *UTTERANCES}),
    "study2-raw": frozenset({"goal", "true_state", "positivity", "utterance"}),
    "study2-choices": frozenset({"goal", "state", "utterance"}),
    "study2-findings": frozenset({"finding", "first", "second", "difference", "ci_low", "ci_high"}),
    "study2-ceiling": frozenset({"measure", "value", "ci_low", "ci_high"}),
}
FORMATS = ("goal,state + 8 utterance columns", "goal,state,utterance", "goal,true_state,positivity,utterance",
           "finding,first,second,difference,ci_low,ci_high", "measure,value,ci_low,ci_high")
CEILING_MEASURES = ("split_half_js", "split_half_r_sb", "sampling_floor_js")


@dataclass(frozen=True)
class HumanFinding:
    """The humans' figures for one finding: the two shares compared, their difference and its 95% interval."""

    first: float
    second: float
    difference: float
    ci: tuple[float, float] | None
    source: str  # "published" or how the interval was computed


@dataclass
class Study2Human:
    """Per goal x state cell the human distribution over the 8 utterances (rows renormalised to sum 1); with the
    participants when the file names them, the noise ceiling and the published findings' figures."""

    source: str
    cells: dict[tuple[str, str], np.ndarray]
    n: dict[tuple[str, str], int | None] = field(default_factory=dict)
    participants: Participants | None = None
    ceiling: Ceiling | None = None
    ceiling_note: str = ""  # why there is no ceiling
    published: dict[str, HumanFinding] = field(default_factory=dict)  # finding key -> published figures
    published_source: str = ""  # the file the published findings' figures were read from
    finding_cis: dict[str, tuple[float, float] | None] = field(default_factory=dict)  # from the participants

    def finding(self, key: str) -> HumanFinding | None:
        """The humans' figures for a finding: computed from these cells, with the interval from the participants
        (or the published one when these are the published data); None when a cell it needs is missing."""
        f = next(f for f in FINDINGS if f.key == key)
        if not all(c in self.cells for c in f.cells):
            return None
        counts = {c: self.cells[c] * (self.n.get(c) or 1) for c in f.cells}
        first, second, diff = (float(x) for x in counts_effect(f, counts))
        if key in self.finding_cis:
            people = len(self.participants.ids) if self.participants else 0
            return HumanFinding(first, second, diff, self.finding_cis[key],
                                f"{FINDINGS_BOOT:,} bootstrap resamples of the {people} participants")
        pub = self.published.get(key)
        if pub is not None:
            return HumanFinding(first, second, diff, pub.ci, "published")
        return HumanFinding(first, second, diff, None, "no interval: no participant ids")



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
    """The authors' speaker-production file: one row per choice, the utterance in two columns; with `subid`, the
    participants (the noise ceiling and the intervals of the humans' own findings are computed from them)."""
    counts: dict[tuple[str, str], np.ndarray] = {}
    who: list[tuple[str, int, int]] = []
    for line, row in t.rows:  # the authors' own labels exactly: a raw file is data, not a lab's wording
        goal = _raw_value(t, line, "goal", row["goal"], LABELS)
        state = RAW_STATES[_raw_value(t, line, "true_state", row["true_state"], RAW_STATES)]
        lead = RAW_POSITIVITY[_raw_value(t, line, "positivity", row["positivity"], RAW_POSITIVITY)]
        adjective = _raw_value(t, line, "utterance", row["utterance"], QUALITIES)
        u = f"{lead} {adjective}"
        counts.setdefault((goal, state), np.zeros(len(UTTERANCES)))[UTTERANCES.index(u)] += 1
        if "subid" in row:
            if not row["subid"]:
                raise DataError(f"{where(t, line, 'subid')}: empty participant id")
            who.append((row["subid"], CELLS.index((goal, state)), UTTERANCES.index(u)))
    cells = {k: c / c.sum() for k, c in counts.items()}
    human = Study2Human(str(t.path), cells, {k: int(c.sum()) for k, c in counts.items()})
    if not who:
        human.ceiling_note = f"no noise ceiling: {t.path} has no participant column (subid)"
        return human
    ids = tuple(dict.fromkeys(w for w, _, _ in who))
    index = {p: i for i, p in enumerate(ids)}
    per = np.zeros((len(ids), len(CELLS), len(UTTERANCES)))
    for p, c, u_i in who:
        per[index[p], c, u_i] += 1
    human.participants = Participants(ids, per)
    human.ceiling = noise_ceiling(human.participants, str(t.path))
    if human.ceiling is None:
        human.ceiling_note = f"no noise ceiling: {len(ids)} participant(s) in {t.path}, at least 4 needed"
    human.finding_cis = finding_intervals(human.participants, list(CELLS))
    return human


def _bounds(t: Table, line: int, row: dict[str, str]) -> tuple[float, float]:
    lo, hi = (number(t, line, c, row[c], -1.0, 1.0) for c in ("ci_low", "ci_high"))
    if lo > hi:
        raise DataError(f"{t.path}: line {line}: ci_low {lo} is above ci_high {hi}")
    return lo, hi


def _findings(t: Table, current: Study2Human | None) -> Study2Human:
    """The published figures of the findings (replacing any read before); the cells stay."""
    if current is None:
        raise DataError(f"{t.path}: study 2 findings need the human proportions (read before them)")
    keys = {f.key for f in FINDINGS}
    published = {}
    for line, row in t.rows:
        if row["finding"] not in keys:
            raise DataError(f"{where(t, line, 'finding')}: {row['finding']!r} is not one of {', '.join(sorted(keys))}")
        first, second = (number(t, line, c, row[c], 0.0, 1.0) for c in ("first", "second"))
        published[row["finding"]] = HumanFinding(first, second, number(t, line, "difference", row["difference"],
                                                                       -1.0, 1.0), _bounds(t, line, row), "published")
    current.published = published
    current.published_source = str(t.path)
    return current


def _ceiling(t: Table, current: Study2Human | None) -> Study2Human:
    """The published noise ceiling (replacing any before); the cells stay."""
    if current is None:
        raise DataError(f"{t.path}: a study 2 noise ceiling needs the human proportions (read before it)")
    got: dict[str, tuple[float, tuple[float, float], int, int]] = {}
    for line, row in t.rows:
        m = row["measure"]
        if m not in CEILING_MEASURES:
            raise DataError(f"{where(t, line, 'measure')}: {m!r} is not one of {', '.join(CEILING_MEASURES)}")
        splits = int(number(t, line, "splits", row["splits"], 1, 1e9)) if row.get("splits") else 0
        people = int(number(t, line, "participants", row["participants"], 1, 1e9)) if row.get("participants") else 0
        got[m] = (number(t, line, "value", row["value"], -1.0, 1.0), _bounds(t, line, row), splits, people)
    missing = [m for m in CEILING_MEASURES[:2] if m not in got]
    if missing:
        raise DataError(f"{t.path}: the noise ceiling needs a row for {missing[0]!r}")
    js, r = got["split_half_js"], got["split_half_r_sb"]
    floor = got.get("sampling_floor_js")
    current.ceiling = Ceiling(js=js[0], js_ci=js[1], r=r[0], r_ci=r[1], floor_js=floor[0] if floor else None,
                              floor_js_ci=floor[1] if floor else None, splits=js[2], participants=js[3],
                              source=str(t.path), published=True)
    current.ceiling_note = ""
    return current


def default_files(folder: Path) -> list[Path]:
    return [folder / "study2_production.csv", folder / "study2_findings.csv", folder / "study2_ceiling.csv"]


def read(kind: str, t: Table, current: Study2Human | None = None) -> Study2Human:
    """The human data with this file read: a file of proportions or choices replaces all before it; the published
    findings' figures and the noise ceiling replace only themselves."""
    if kind == "study2-findings":
        return _findings(t, current)
    if kind == "study2-ceiling":
        return _ceiling(t, current)
    readers = {"study2-proportions": _study2_wide, "study2-choices": _study2_long, "study2-raw": _study2_raw}
    human = readers[kind](t)
    if kind != "study2-raw":
        human.ceiling_note = f"no noise ceiling: {t.path} does not name the participants (the authors' raw form does)"
    return human


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
