"""The humans' own noise in study 2: how close two halves of the human sample come to each other.

From the authors' raw speaker-production file (a row per choice, `subid` the participant): 1,000 random splits
of the participants into halves (seed 2026); per split, the JS divergence between the halves' goal x state
distributions (mean over the cells both halves have) and Pearson r over their cell x utterance proportions,
Spearman-Brown corrected (2r / (1 + r): the reliability of the whole sample, not of a half). Reported: the mean
over splits and the 2.5 / 97.5 percentiles. Beside it the sampling floor: JS of a bootstrap resample of all
participants against the full sample. A model's JS divergence can then be read as a multiple of the split-half
JS. The published figures (data/human/study2_ceiling.csv, computed the same way from the authors' data) are
used when no raw file is given.

Participants' choices are also resampled (2,000 times, seed 2026, as the published figures) for the intervals
of the humans' own effects in the findings (grace/studies/study2/findings.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from grace.compare.metrics import interval, js_divergence, pearson
from grace.studies.study2.findings import FINDINGS, counts_effect

SPLITS = 1000
SEED = 2026
FINDINGS_BOOT = 2000
MIN_PARTICIPANTS = 4  # two per half: fewer gives halves of one person, whose spread says nothing


@dataclass(frozen=True)
class Participants:
    """The human choices by participant: per participant the count of each utterance in each cell."""

    ids: tuple[str, ...]
    counts: np.ndarray  # (participants, cells, 8)

    def total(self, weights: np.ndarray) -> np.ndarray:
        """(..., cells, 8) counts of the participants weighted by `weights` (..., participants): 0/1 for a half,
        the number of draws for a bootstrap resample."""
        p, c, u = self.counts.shape
        return (weights @ self.counts.reshape(p, c * u)).reshape(*weights.shape[:-1], c, u)


@dataclass(frozen=True)
class Ceiling:
    """Split-half JS (bits) and Spearman-Brown r of the humans, with the 2.5 / 97.5 percentiles over splits."""

    js: float
    js_ci: tuple[float, float] | None
    r: float | None
    r_ci: tuple[float, float] | None
    floor_js: float | None
    floor_js_ci: tuple[float, float] | None
    splits: int
    participants: int
    source: str  # the file: data/human/study2_ceiling.csv (published figures) or the raw file it was computed from
    published: bool = False


def _proportions(counts: np.ndarray) -> np.ndarray:
    n = counts.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, counts / np.where(n > 0, n, 1), np.nan)


def split_half(parts: Participants, halves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per split (rows of `halves`, (splits, participants) bool: True = first half): the mean JS over the cells
    both halves have, and the Spearman-Brown corrected Pearson r over those cells' utterance proportions."""
    halves = np.atleast_2d(halves).astype(float)
    a, b = parts.total(halves), parts.total(1.0 - halves)  # (splits, cells, 8)
    both = (a.sum(axis=-1) > 0).all(axis=0) & (b.sum(axis=-1) > 0).all(axis=0)  # cells every split has in both
    pa, pb = _proportions(a[:, both]), _proportions(b[:, both])
    js = js_divergence(pa, pb).mean(axis=-1)
    r = pearson(pa.reshape(len(pa), -1), pb.reshape(len(pb), -1))
    return js, 2 * r / (1 + r)


def random_halves(n: int, splits: int, rng: np.random.Generator) -> np.ndarray:
    """(splits, n) bool: each row a random half (n // 2 participants) of the n."""
    base = np.arange(n) < n // 2
    return rng.permuted(np.tile(base, (splits, 1)), axis=1)


def noise_ceiling(parts: Participants, source: str, splits: int = SPLITS, seed: int = SEED) -> Ceiling | None:
    """The split-half ceiling and the sampling floor; None with fewer than MIN_PARTICIPANTS participants."""
    n = len(parts.ids)
    if n < MIN_PARTICIPANTS:
        return None
    rng = np.random.default_rng(seed)
    js, r = split_half(parts, random_halves(n, splits, rng))
    full = _proportions(parts.total(np.ones(n)))
    draws = rng.multinomial(n, np.full(n, 1 / n), size=splits).astype(float)
    boot = _proportions(parts.total(draws))
    have = np.isfinite(full).all(axis=-1) & np.isfinite(boot).all(axis=-1)  # (splits, cells)
    floor = np.where(have, js_divergence(np.nan_to_num(boot), np.nan_to_num(full)), np.nan)
    floor_mean = np.nanmean(floor, axis=-1)
    r_ok = r[np.isfinite(r)]
    return Ceiling(js=float(js.mean()), js_ci=interval(js), r=float(r_ok.mean()) if r_ok.size else None,
                   r_ci=interval(r_ok), floor_js=float(np.nanmean(floor_mean)), floor_js_ci=interval(floor_mean),
                   splits=splits, participants=n, source=source)


def finding_intervals(parts: Participants, cells: list[tuple[str, str]], n_boot: int = FINDINGS_BOOT,
                      seed: int = SEED) -> dict[str, tuple[float, float] | None]:
    """Per finding the 95% interval of the humans' effect, resampling participants (None: a cell is missing)."""
    n = len(parts.ids)
    if n < MIN_PARTICIPANTS:
        return {}
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, np.full(n, 1 / n), size=n_boot).astype(float)
    total = parts.total(draws)
    by_cell = {c: total[:, i] for i, c in enumerate(cells)}
    out: dict[str, tuple[float, float] | None] = {}
    for f in FINDINGS:
        if not all(by_cell[c].sum() > 0 for c in f.cells):
            out[f.key] = None
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            _, _, eff = counts_effect(f, by_cell)
        out[f.key] = interval(eff)
    return out
