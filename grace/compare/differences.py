"""Differences between models with their uncertainty, and the ranking's tied groups.

For every pair of models in a run (a quantized variant and its base among them), each study computes the paired
bootstrap difference of each of its ranking measures (`Comparison.paired`): both models on the trials both
answered, the same trials resampled for both (grace/compare/resample.py). A difference is distinguishable from
zero when its 95% interval excludes 0. The ranking then gives each model the rank 1 + the number of models
(same study and source) that are distinguishably better on the study's primary measure; models sharing a rank
are tied, not ordered.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

import numpy as np

from grace.compare.metrics import interval
from grace.compare.resample import Moments, Trials, common, draw, indices, paired_draw
from grace.compare.schema import Difference, RankedRow

K = TypeVar("K", bound=Hashable)
Measures = Callable[[dict[K, Moments], Trials[K]], dict[str, np.ndarray]]  # (moments, their trials) -> by name

HIGHER_IS_BETTER = {"js": False, "r": True, "findings": True}
RECENTRED = {"js": 1.0, "r": 2.0}  # plug-in measures (largest |difference|): the interval re-centred as theirs


def difference(study: str, source: str, model: str, other: str, measure: str, n_trials: int,
               point: tuple[float | None, float | None], boot: tuple[np.ndarray, np.ndarray] | None,
               no_interval: str = "") -> Difference:
    """One measure's paired difference model - other: the point values, and the interval of the resampled
    differences (boot: each model's measure in the same resamples; None: no interval, `no_interval` says why)."""
    a, b = point
    row = Difference(study=study, source=source, model=model, other=other, measure=measure, n_trials=n_trials,
                     model_value=a, other_value=b, no_interval=no_interval)
    if a is None or b is None:
        row.no_interval = row.no_interval or f"{measure} undefined for one of the two"
        return row
    row.difference = a - b
    if boot is None:
        return row
    d = np.asarray(boot[0], dtype=float) - np.asarray(boot[1], dtype=float)
    bound = RECENTRED.get(measure)
    row.ci = interval(d, row.difference, (-bound, bound)) if bound else interval(d)
    if row.ci is None:
        row.no_interval = f"{measure} undefined in every resample"
        return row
    row.distinguishable = bool(row.ci[0] > 0 or row.ci[1] < 0)
    if row.distinguishable:
        ahead = (row.difference > 0) == HIGHER_IS_BETTER.get(measure, True)
        row.better = model if ahead else other
    return row


def _value(x: np.ndarray) -> float | None:
    return None if np.isnan(x[0]) else float(x[0])


def paired_differences(study: str, source: str, models: list[tuple[str, Trials[K]]], pairs: list[tuple[int, int]],
                       names: tuple[str, ...], measures: Measures[K], thin_note: Callable[[Trials[K]], str],
                       n_boot: int, rng: np.random.Generator) -> list[Difference]:
    """For each pair (i, j) of models: the paired bootstrap difference i - j of each measure in `names`, on the
    trials both answered (`measures` computes them over resamples' moments; `thin_note` says why a set of trials
    gives no interval, "" when it does).

    When every model answered the same trials (the usual run), all pairs share one set of resampled trial indices,
    so each model is resampled once (its replicates apart) rather than once per pair; otherwise each pair is
    resampled on its common trials."""
    shared = len({tuple((k, tuple(t.ids[k])) for k in t.strata) for _, t in models}) == 1
    first = models[0][1]
    note0 = thin_note(first) if shared else ""
    idx = indices(first, n_boot, rng) if shared and n_boot and first.strata and not note0 else None
    cache: dict[int, tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]] = {}

    def once(i: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
        if i not in cache:
            t = models[i][1]
            cache[i] = (measures(t.point(), t), measures(draw(t, n_boot, rng, idx), t) if idx is not None else None)
        return cache[i]

    out = []
    for i, j in pairs:
        (a, ta), (b, tb) = models[i], models[j]
        if shared:
            ca, note = ta, note0
        else:
            ca, cb = common(ta, tb)
            note = thin_note(ca) if ca.strata else ""
        n = sum(ca.n(k) for k in ca.strata)
        if not ca.strata:
            out += [difference(study, source, a, b, m, 0, (None, None), None, "no trial that both models answered")
                    for m in names]
            continue
        if shared:
            (pa, ba), (pb, bb) = once(i), once(j)
        else:
            pa, pb = measures(ca.point(), ca), measures(cb.point(), cb)
            ba = bb = None
            if n_boot and not note:
                da, db = paired_draw(ca, cb, n_boot, rng)
                ba, bb = measures(da, ca), measures(db, cb)
        for m in names:
            out.append(difference(study, source, a, b, m, n, (_value(pa[m]), _value(pb[m])),
                                  (ba[m], bb[m]) if ba is not None and bb is not None else None, note))
    return out


def group_ranks(rows: list[RankedRow], diffs: list[Difference], primary: dict[str, str]) -> list[RankedRow]:
    """The rows re-ranked per (study, source) block: an ok row's rank is 1 + the number of ok rows distinguishably
    better on the study's primary measure, rows sharing a rank list each other in `tied_with`; within a block the
    rows are ordered by that rank, then as they came (by the point value). Rows that could not be compared come
    after them, numbered on."""
    better: dict[tuple[str, str, str], set[str]] = {}
    for d in diffs:
        if d.measure == primary.get(d.study) and d.better is not None:
            loser = d.other if d.better == d.model else d.model
            better.setdefault((d.study, d.source, loser), set()).add(d.better)
    blocks: dict[tuple[str, str], list[RankedRow]] = {}
    for r in rows:
        blocks.setdefault((r.study, r.source), []).append(r)
    out: list[RankedRow] = []
    for (study, source), block in blocks.items():
        ok = [r for r in block if r.status == "ok"]
        names = {r.model for r in ok}
        for r in ok:
            r.rank = 1 + len(better.get((study, source, r.model), set()) & names)
        for r in ok:
            r.tied_with = [o.model for o in ok if o is not r and o.rank == r.rank]
        rest = [r for r in block if r.status != "ok"]
        for i, r in enumerate(rest, start=len(ok) + 1):
            r.rank = i
        out += sorted(ok, key=lambda r: r.rank) + rest  # sorted() is stable: ties keep the point order
    return out


def pair_order(a: str, b: str, variant_of: dict[str, str | None]) -> tuple[str, str, bool]:
    """(model, other, variant pair): a variant is put first, before the model it is a variant of."""
    if variant_of.get(b) == a:
        return b, a, True
    return a, b, variant_of.get(a) == b
