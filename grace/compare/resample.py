"""The bootstrap's unit: a model's per-trial values grouped in strata (study 2's goal x state cells, study 1's
conditions), resampled as the field does it.

- Trials (items) are resampled with replacement within each stratum, so every stratum keeps its size.
- Where a trial has several replicates (Exp 1 asked more than once), each resampled trial's replicates are
  resampled too, independently for every copy of it (a two-stage bootstrap); one replicate is kept as it is.
- Two models are compared on the trials both answered, with the same trial indices for both in every resample
  (a paired bootstrap); their replicates, which are not paired, are resampled apart.
- An interval needs at least 2 trials in every stratum it is computed from: a stratum with one trial is the same
  in every resample, and would make the interval look narrower than the data allow (see `thin`).

A resample of a stratum is summarised by its moments (`Moments`: the trial count, the sum of the per-trial
vectors and the sum of their outer products), from which every measure here follows: cell means (JS, r), and the
mean and variance of any linear contrast of a trial's vector (the t-tests of the findings). With one replicate per
trial a resample is a weighting of the trials, so the moments are one matrix product per stratum.

The functions are over per-trial data only, so they apply to any subset of a model's outputs (one prompt variant,
one option order) as well as to all of it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from grace.ui_format import interval as interval_text

MIN_TRIALS = 2  # fewer trials than this in a stratum: no interval (the point value is shown with its n)
K = TypeVar("K", bound=Hashable)  # a stratum: a goal x state cell, an (access, observe) condition


@dataclass
class Trials(Generic[K]):
    """Per stratum the trial ids and, per trial, its replicates' values: an (R, d) array, R >= 1."""

    ids: dict[K, list[str]] = field(default_factory=dict)
    values: dict[K, list[np.ndarray]] = field(default_factory=dict)

    @classmethod
    def collect(cls, rows: Iterable[tuple[K, str, np.ndarray]]) -> Trials[K]:
        """From (stratum, trial id, one replicate's values (d,)) rows; a trial's replicates are gathered in order,
        trials ordered by id within a stratum. A trial id seen under two strata keeps the first."""
        where: dict[str, K] = {}
        reps: dict[str, list[np.ndarray]] = {}
        for key, tid, v in rows:
            where.setdefault(tid, key)
            if where[tid] == key:
                reps.setdefault(tid, []).append(np.asarray(v, dtype=float))
        out: Trials[K] = cls()
        for tid, key in sorted(where.items(), key=lambda kv: kv[0]):  # by trial id: the order records came in
            out.ids.setdefault(key, []).append(tid)  # (requests finish in any order) changes no resample
            out.values.setdefault(key, []).append(np.stack(reps[tid]))
        return out

    @property
    def strata(self) -> list[K]:
        return list(self.ids)

    def n(self, key: K) -> int:
        return len(self.ids.get(key, []))

    def restrict(self, keys: Iterable[K]) -> Trials[K]:
        """Only these strata (those present), in this order."""
        keep = [k for k in keys if self.ids.get(k)]
        return Trials({k: self.ids[k] for k in keep}, {k: self.values[k] for k in keep})

    def means(self) -> dict[K, np.ndarray]:
        """Per stratum the (n, d) per-trial values: each trial's mean over its replicates."""
        return {k: np.concatenate(vals) if all(len(v) == 1 for v in vals) else np.stack([v.mean(axis=0) for v in vals])
                for k, vals in self.values.items()}

    def point(self) -> dict[K, Moments]:
        """The data's moments as one "resample" (leading axis 1), so a measure written for resamples gives the
        estimate."""
        return {k: Moments.of(m[None]) for k, m in self.means().items()}


@dataclass(frozen=True)
class Moments:
    """A stratum's trials, over leading (resample) axes: their count, the sum of their vectors and the sum of the
    vectors' outer products (each trial's vector: the mean of its replicates)."""

    n: int
    s1: np.ndarray  # (..., d)
    s2: np.ndarray  # (..., d, d)

    @classmethod
    def of(cls, x: np.ndarray) -> Moments:
        """From per-trial vectors x (..., n, d)."""
        return cls(x.shape[-2], x.sum(axis=-2), np.einsum("...nd,...ne->...de", x, x))

    @property
    def mean(self) -> np.ndarray:
        return self.s1 / self.n

    def contrast(self, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sum and sum of squares over the trials of the contrast c . x: c (d,) gives (...,) each; c (d, k), k
        contrasts at once, gives (..., k)."""
        ck = c if c.ndim == 2 else c[:, None]
        s1, s2 = self.s1 @ ck, np.einsum("...de,dk,ek->...k", self.s2, ck, ck)
        return (s1, s2) if c.ndim == 2 else (s1[..., 0], s2[..., 0])


def mean_var(parts: list[Moments], c: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and sample variance (ddof 1) of the contrast c . x over the trials of these strata pooled, and n."""
    n = sum(p.n for p in parts)
    sums = [p.contrast(c) for p in parts]
    s1 = sum(s for s, _ in sums)
    s2 = sum(q for _, q in sums)
    mean = np.asarray(s1) / n
    var = np.clip((np.asarray(s2) - n * mean**2) / max(n - 1, 1), 0.0, None)
    scale = np.maximum(1.0, np.asarray(s2) / n)
    return mean, np.where(var < 1e-12 * scale, 0.0, var), n  # below that: rounding of the moments, not spread


def common(a: Trials[K], b: Trials[K]) -> tuple[Trials[K], Trials[K]]:
    """Both restricted to the trials (ids) that both have, stratum by stratum, in one order."""
    ka: Trials[K] = Trials()
    kb: Trials[K] = Trials()
    for key in a.strata:
        if key not in b.ids:
            continue
        at = dict(zip(a.ids[key], a.values[key], strict=True))
        bt = dict(zip(b.ids[key], b.values[key], strict=True))
        shared = [t for t in a.ids[key] if t in bt]
        if shared:
            ka.ids[key], ka.values[key] = shared, [at[t] for t in shared]
            kb.ids[key], kb.values[key] = shared, [bt[t] for t in shared]
    return ka, kb


def thin(trials: Trials[K], keys: Iterable[K] | None = None) -> dict[K, int]:
    """The strata (of `keys`, default all) with fewer than MIN_TRIALS trials, and their n: no interval from them."""
    keys = trials.strata if keys is None else list(keys)
    return {k: trials.n(k) for k in keys if trials.n(k) < MIN_TRIALS}


def no_interval(thin_strata: dict[K, int], of: int, unit: str = "cells") -> str:
    """Why an interval is withheld, e.g. "n=1, no interval" or "n=1 in 3 of 12 cells, no interval"."""
    if not thin_strata:
        return ""
    n = min(thin_strata.values())
    if of <= 1:
        return f"n={n}, no interval"
    return f"n={n} in {len(thin_strata)} of {of} {unit}, no interval"


def indices(trials: Trials[K], n_boot: int, rng: np.random.Generator) -> dict[K, np.ndarray]:
    """Per stratum (n_boot, n) trial indices drawn with replacement."""
    return {k: rng.integers(0, len(ids), size=(n_boot, len(ids))) for k, ids in trials.ids.items()}


def _two_stage(values: list[np.ndarray], idx: np.ndarray, rng: np.random.Generator) -> Moments:
    """The moments of resamples whose trials are idx (B, n) and whose every drawn trial (each copy apart) has its R
    replicates resampled with replacement: a copy's value is (c . V) / R with c ~ Multinomial(R, 1/R). Summed
    over copies, the first moments need the per-trial sums of c and the second the per-trial sums of c c^T, so
    each is one matrix product with the replicates' values (trials grouped by their number of replicates)."""
    n_boot, d = idx.shape[0], values[0].shape[1]
    counts = np.array([len(v) for v in values])
    s1, s2 = np.zeros((n_boot, d)), np.zeros((n_boot, d, d))
    for r in np.unique(counts):
        members = np.flatnonzero(counts == r)
        v = np.stack([values[i] for i in members])  # (m, r, d)
        m = len(members)
        where = np.full(len(values), -1)
        where[members] = np.arange(m)
        b_i, j_i = np.nonzero(where[idx] >= 0)
        key = b_i * m + where[idx][b_i, j_i]  # (copies,): resample and trial of each copy
        draws = rng.integers(0, r, size=(len(key), r))  # each copy's r replicate draws
        c = (draws[:, :, None] == np.arange(r)).sum(axis=1).astype(float)  # (copies, r) ~ Multinomial(r, 1/r)
        iu, ju = np.triu_indices(r)
        pairs = c[:, iu] * c[:, ju]  # c c^T, upper triangle
        flat = np.bincount((key[:, None] * len(iu) + np.arange(len(iu))).ravel(), pairs.ravel(),
                           n_boot * m * len(iu)).reshape(n_boot * m, len(iu))
        second = np.zeros((n_boot * m, r, r))
        second[:, iu, ju] = flat
        second[:, ju, iu] = flat
        first = second.sum(axis=-1) / r  # sum over r' of c_r c_r' = c_r r
        second = second.reshape(n_boot * m, r * r)
        s1 += first.reshape(n_boot, m * r) @ v.reshape(m * r, d) / r
        outer = np.einsum("mrd,mse->mrsde", v, v).reshape(m * r * r, d * d)
        s2 += (second.reshape(n_boot, m * r * r) @ outer).reshape(n_boot, d, d) / r**2
    return Moments(idx.shape[1], s1, s2)


def draw(trials: Trials[K], n_boot: int, rng: np.random.Generator,
         idx: dict[K, np.ndarray] | None = None) -> dict[K, Moments]:
    """Per stratum the moments of n_boot resamples (trials by `idx`, drawn when not given; each drawn trial's
    replicates resampled)."""
    idx = indices(trials, n_boot, rng) if idx is None else idx
    out = {}
    for k in trials.strata:
        values, i = trials.values[k], idx[k]
        n = len(values)
        if all(len(v) == 1 for v in values):  # a resample is a weighting of the trials: w @ x
            x = np.concatenate(values)  # (n, d)
            w = np.bincount((i + n * np.arange(len(i))[:, None]).ravel(), minlength=len(i) * n).reshape(len(i), n)
            w = w.astype(float)  # a float matrix product (BLAS), not an integer one
            outer = (x[:, :, None] * x[:, None, :]).reshape(n, -1)
            out[k] = Moments(n, w @ x, (w @ outer).reshape(len(i), x.shape[1], x.shape[1]))
        else:
            out[k] = _two_stage(values, i, rng)
    return out


def paired_draw(a: Trials[K], b: Trials[K], n_boot: int, rng: np.random.Generator
                ) -> tuple[dict[K, Moments], dict[K, Moments]]:
    """Resamples of two models' trials with the same trial indices (a and b hold the same trials: `common`)."""
    idx = indices(a, n_boot, rng)
    return draw(a, n_boot, rng, idx), draw(b, n_boot, rng, idx)


def shown(ci: tuple[float, float] | None, n: int | None = None, note: str = "", fmt: str | None = None) -> str:
    """An interval as "[a, b]" (3 significant digits, or `fmt`: ".0f" for counts); withheld, the reason in
    parentheses: `note`, or "(n=1, no interval)" for fewer than 2 trials; else "" (no interval to show, e.g. r
    undefined). An interval
    shown always comes from at least 2 trials per cell, so "[1.00, 1.00]" is a narrow one, not a lone trial."""
    if ci is not None:
        return interval_text(ci) if fmt is None else f"[{ci[0]:{fmt}}, {ci[1]:{fmt}}]"
    if note:
        return f"({note})"
    if n is not None and n < MIN_TRIALS:
        return f"(n={n}, no interval)"
    return ""
