"""Study 2's published findings (Yoon, Tessler, Goodman & Frank 2020), tested per model like study 1's.

The paper's claim is about which utterances each goal produces, not only how the distributions look:
- under both goals speakers use negation ("It wasn't ...") more than under either single goal when the
  performance was bad (0-1 hearts, the two states pooled);
- under the social goal they say "It was good" / "It was amazing" more than under either other goal at 0-1 hearts;
- under the informative goal the literal utterance is the most chosen in every state (0 hearts "It was terrible",
  1 heart "It was bad", 2 hearts "It was good", 3 hearts "It was amazing").

A model's data are per-trial distributions over the 8 utterances (Exp 2: option probabilities; Exp 1: the
share of a trial's replicates that chose each), summarised per cell by their moments (grace/compare/resample.py),
over any leading (resample) axes. Each finding's test is one-sided, at `alpha`, against the smallest effect of
interest MIN_EFFECT (a minimum-effect test, H0: effect <= MIN_EFFECT), so that a difference too small to matter
is not a reproduction however many trials make it significant:
- "more" findings: Welch's t-test, the first goal's trials (both states pooled) against the second goal's;
- "most" findings: within the cell, the paired t-test of the literal utterance against every other utterance,
  each significant (an intersection-union test: the literal one is chosen more than each of the 7 others).
A finding is reproduced when its test is significant (the humans' were, with effects of 0.28-0.41 and 95%
intervals above 0.2: data/human/study2_findings.csv); not testable when one of its cells has fewer than 2 trials
(the test and its interval need two).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from grace.compare.metrics import Tests, one_sample_greater, welch_greater
from grace.compare.resample import Moments, mean_var
from grace.studies.study2.study import UTTERANCES

Cell = tuple[str, str]
LOW = ("0 hearts", "1 heart")
NEGATION = tuple(u for u in UTTERANCES if u.startswith("It wasn't"))
POSITIVE = ("It was good", "It was amazing")
# The smallest effect of interest: 2 percentage points of the utterances' share. A random-weight model otherwise
# "reproduces" findings with effects of 1e-7 over 800 near-identical trials. The humans' own 203 choices per cell
# clear every finding up to a margin of 0.026 (the weakest: informative, 1 heart, "It was bad" 0.355 against
# "It wasn't good" 0.241), so a larger margin would fail the humans themselves.
MIN_EFFECT = 0.02


@dataclass(frozen=True)
class Finding:
    key: str
    label: str
    kind: Literal["more", "most"]
    first: str  # goal
    second: str  # the other goal ("more"); "" for "most"
    states: tuple[str, ...]
    options: tuple[str, ...]  # "more": the utterances whose share is compared; "most": the literal utterance

    @property
    def cells(self) -> list[Cell]:
        goals = (self.first, self.second) if self.kind == "more" else (self.first,)
        return [(g, s) for g in goals for s in self.states]

    @property
    def first_cells(self) -> list[Cell]:
        return [(self.first, s) for s in self.states]

    @property
    def second_cells(self) -> list[Cell]:
        return [(self.second, s) for s in self.states]

    @property
    def columns(self) -> list[int]:
        return [UTTERANCES.index(u) for u in self.options]


def _more(first: str, second: str, what: str, options: tuple[str, ...]) -> Finding:
    return Finding(f"{first}>{second}:{what}", f"{first} > {second}: {what} at 0-1 hearts", "more", first, second,
                   LOW, options)


def _most(state: str, literal: str) -> Finding:
    return Finding(f"informative:{state}:literal", f"informative, {state}: \"{literal}\" most chosen", "most",
                   "informative", "", (state,), (literal,))


FINDINGS: tuple[Finding, ...] = (
    _more("both", "informative", "negation", NEGATION),
    _more("both", "social", "negation", NEGATION),
    _more("social", "informative", "positive", POSITIVE),
    _more("social", "both", "positive", POSITIVE),
    _most("0 hearts", "It was terrible"),
    _most("1 heart", "It was bad"),
    _most("2 hearts", "It was good"),
    _most("3 hearts", "It was amazing"),
)


def _indicator(f: Finding) -> np.ndarray:
    c = np.zeros(len(UTTERANCES))
    c[f.columns] = 1.0
    return c


def _versus_literal(f: Finding) -> np.ndarray:
    """(8, 7): the contrasts literal - each other utterance."""
    lit = f.columns[0]
    eye = np.eye(len(UTTERANCES))
    return np.stack([eye[lit] - eye[j] for j in range(len(UTTERANCES)) if j != lit], axis=1)


def effect(f: Finding, cells: dict[Cell, Moments]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first, second, effect) over leading axes.

    "more": the share of `options` among the first goal's trials (0-1 hearts pooled), the second goal's, and
    their difference. "most": the literal utterance's share, the largest other share, and their difference."""
    if f.kind == "more":
        c = _indicator(f)
        a = mean_var([cells[k] for k in f.first_cells], c)[0]
        b = mean_var([cells[k] for k in f.second_cells], c)[0]
        return a, b, a - b
    m = cells[f.first_cells[0]].mean  # (..., 8)
    lit = m[..., f.columns[0]]
    others = np.delete(m, f.columns[0], axis=-1).max(axis=-1)
    return lit, others, lit - others


def decide(f: Finding, cells: dict[Cell, Moments], alpha: float) -> Tests:
    """The finding's one-sided test over leading axes (see the module's docstring)."""
    if f.kind == "more":
        c = _indicator(f)
        return welch_greater(*mean_var([cells[k] for k in f.first_cells], c),
                             *mean_var([cells[k] for k in f.second_cells], c), alpha, MIN_EFFECT)
    each = one_sample_greater(*mean_var([cells[f.first_cells[0]]], _versus_literal(f)), alpha, MIN_EFFECT)  # (..., 7)
    pick = np.expand_dims(each.p_value.argmax(axis=-1), -1)  # the weakest of the 7 is the one shown
    return Tests(np.take_along_axis(each.statistic, pick, -1)[..., 0],
                 np.take_along_axis(each.p_value, pick, -1)[..., 0], np.asarray(each.significant.all(axis=-1)))


def counts_effect(f: Finding, counts: dict[Cell, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first, second, effect) from human choice counts per cell (..., 8), choices pooled over a goal's states."""
    def share(keys: list[Cell]) -> np.ndarray:
        c = sum(counts[k] for k in keys)
        return np.asarray(c)[..., f.columns].sum(axis=-1) / np.asarray(c).sum(axis=-1)
    if f.kind == "more":
        a, b = share(f.first_cells), share(f.second_cells)
        return a, b, a - b
    c = counts[f.first_cells[0]]
    p = c / c.sum(axis=-1, keepdims=True)
    lit = p[..., f.columns[0]]
    others = np.delete(p, f.columns[0], axis=-1).max(axis=-1)
    return lit, others, lit - others
