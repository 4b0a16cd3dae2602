"""Counterbalanced option orders: the order each permutable option list is shown in, per trial and replicate.

A study's permutable lists (`Study.permutable`, e.g. study 2's 8 utterances, study 1's yes/no) are never shown
in one fixed order on every trial: the first option listed draws choices of its own (position bias). Per study
and list of n options:

- a **base order**: the study's options shuffled by a generator seeded with the seed, the study and the list's
  name (the same on every machine and every rerun);
- its n **cyclic rotations**, a Latin square: each option in each position exactly once;
- the **units** of a design cell (`Study.condition`: its trials in input order, each trial's replicates in turn)
  take the rotations in turn, from a starting rotation seeded per cell: over a cell's units every option stands
  in every position equally often when the number of units is a multiple of n, and at most once more or less
  otherwise. The start differs between cells, so small cells do not all open with the base order.

Exp 2 can score a trial under every rotation instead (CircularEval) and average the distributions; a list longer
than `max_rotations` gets the trial's assigned rotation. `ordering="fixed"` keeps the study's own order
everywhere: the prompts of runs made before counterbalancing.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from grace.studies.base import Layout, Ordering, Question, Study, Trial

Order = tuple[str, ...]


def base_order(options: Order, seed: int, study: str, name: str) -> Order:
    """The study's options shuffled by a generator seeded with (seed, study, list name): reproducible anywhere."""
    order = list(options)
    random.Random(f"{seed}|{study}|{name}").shuffle(order)
    return tuple(order)


def rotations(order: Order) -> list[Order]:
    """The n cyclic rotations of `order` (rotation k starts with order[k]): each option in each position once."""
    return [order[k:] + order[:k] for k in range(len(order))]


def _cell_key(cell: Mapping[str, str]) -> str:
    return "|".join(f"{k}={v}" for k, v in sorted(cell.items()))


class OrderPlan:
    """The option orders of one study's trials: which rotation of each permutable list a trial and replicate get."""

    def __init__(self, study: Study, trials: list[Trial], *, seed: int, ordering: Ordering = "balanced",
                 replications: int = 1) -> None:
        if ordering not in ("fixed", "balanced"):
            raise ValueError(f"option order {ordering!r}: fixed or balanced")
        self.study, self.seed, self.replications = study, seed, replications
        self.fixed = ordering == "fixed" or not study.permutable
        self.bases = {name: base_order(tuple(opts), seed, study.name, name) for name, opts in study.permutable.items()}
        self._rotations = {name: rotations(base) for name, base in self.bases.items()}
        self._start: dict[tuple[str, str], int] = {}  # (list, cell) -> the cell's first rotation
        self._unit: dict[str, int] = {}  # trial id -> its index among its cell's trials (input order)
        self._cell: dict[str, str] = {}
        seen: dict[str, int] = {}
        for t in trials:
            cell = _cell_key(study.condition(t))
            self._cell[t["trial_id"]] = cell
            self._unit[t["trial_id"]] = seen.get(cell, 0)
            seen[cell] = seen.get(cell, 0) + 1

    @property
    def ordering(self) -> Ordering:
        return "fixed" if self.fixed else "balanced"

    def rotations(self, name: str) -> list[Order]:
        return list(self._rotations[name])

    def rotation(self, name: str, trial_id: str, replicate: int = 0) -> int:
        """The rotation of list `name` that this trial and replicate show (the trial must be one of the plan's)."""
        n, cell = len(self.bases[name]), self._cell[trial_id]
        if (name, cell) not in self._start:
            self._start[name, cell] = random.Random(f"{self.seed}|{self.study.name}|{name}|{cell}").randrange(n)
        return (self._start[name, cell] + self._unit[trial_id] * self.replications + replicate) % n

    def orders(self, trial_id: str, replicate: int = 0) -> dict[str, Order]:
        """List name -> the order to show it in (empty when fixed: the study's own orders)."""
        if self.fixed:
            return {}
        return {name: self._rotations[name][self.rotation(name, trial_id, replicate)] for name in self.bases}

    def layout(self, variant: str, trial_id: str, replicate: int = 0) -> Layout:
        return Layout(variant, self.orders(trial_id, replicate))

    def circular(self, max_rotations: int) -> list[str]:
        """The lists Exp 2 scores under every rotation: those of 2..max_rotations options (none when fixed)."""
        if self.fixed:
            return []
        return [name for name, base in self.bases.items() if 2 <= len(base) <= max_rotations]

    def exp2_prompts(self, trial: Trial, variant: str, max_rotations: int) -> tuple[list[tuple[Question, int]],
                                                                                     Ordering]:
        """Every question Exp 2 scores for this trial in this wording, each with its rotation (0 for a question
        scored once), and how the options were ordered. A question listing a circular list is asked under each of
        its rotations; the other questions once, their lists in the trial's assigned order."""
        assigned = self.orders(trial["trial_id"])
        circular = {name: self._rotations[name] for name in self.circular(max_rotations)}
        depth = max((len(r) for r in circular.values()), default=1)
        out: list[tuple[Question, int]] = []
        for k in range(depth):
            orders = {**assigned, **{name: rots[k % len(rots)] for name, rots in circular.items()}}
            for q in self.study.exp2_questions(trial, Layout(variant, orders)):
                rotated = q.order_of in circular
                if k == 0 or (rotated and k < len(circular[str(q.order_of)])):
                    out.append((q, k if rotated else 0))
        ordering: Ordering = "circular" if circular else self.ordering
        return out, ordering
