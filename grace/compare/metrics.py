"""Pure comparison measures: Jensen-Shannon divergence, Pearson r, one-sided t-tests (one at a time and over
bootstrap resamples at once), seeded bootstrap intervals.

Jensen-Shannon divergence uses log base 2, so it lies in [0, 1] (0: identical distributions). The overall
divergence is the unweighted mean over the cells compared. Bootstrap intervals resample trials within each
cell (stratified, grace/compare/resample.py), with a seeded numpy Generator, and report the 2.5 and 97.5
percentiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_BOOTSTRAP = 1000
DEFAULT_SEED = 2026


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (bits) along the last axis; inputs are renormalised to sum 1."""
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    p = p / p.sum(axis=-1, keepdims=True)
    q = q / q.sum(axis=-1, keepdims=True)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(a > 0, a * np.log2(np.where(a > 0, a, 1) / np.where(m > 0, m, 1)), 0.0)
        return terms.sum(axis=-1)

    return np.clip(0.5 * kl(p) + 0.5 * kl(q), 0.0, 1.0)


def pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r along the last axis; NaN where either side is constant (r undefined)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    xc = x - x.mean(axis=-1, keepdims=True)
    yc = y - y.mean(axis=-1, keepdims=True)
    den = np.sqrt((xc**2).sum(axis=-1) * (yc**2).sum(axis=-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = (xc * yc).sum(axis=-1) / den
    return np.where(den > 1e-12, np.clip(r, -1.0, 1.0), np.nan)


def interval(samples: np.ndarray, estimate: float | None = None,
             bounds: tuple[float, float] = (-np.inf, np.inf)) -> tuple[float, float] | None:
    """The 95% percentile interval of bootstrap samples (NaNs ignored); None when none is finite.

    With `estimate`, the interval is re-centred on it (shifted by the bootstrap's bias, mean - estimate) and
    clipped to `bounds`: plug-in JS divergence is biased upward and r downward by sampling noise, so raw
    percentile intervals of resampled data sit beside the estimate rather than around it.
    """
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if s.size == 0:
        return None
    lo, hi = np.percentile(s, [2.5, 97.5])
    if estimate is not None and np.isfinite(estimate):
        bias = float(s.mean()) - estimate
        lo, hi = lo - bias, hi - bias
    return float(np.clip(lo, *bounds)), float(np.clip(hi, *bounds))


def distribution_measures(model: np.ndarray, human: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """JS per cell, mean JS and Pearson r of a model's cell distributions (..., cells, options), any leading
    (resample) axes, against `human` (cells, options): (..., cells), (...), (...) r over the cell x option
    proportions."""
    js_cells = js_divergence(model, human)
    r = pearson(model.reshape(*model.shape[:-2], -1), human.ravel())
    return js_cells, js_cells.mean(axis=-1), r


@dataclass
class PairedTest:
    """One-sided paired t-test that a > b across trials."""

    n: int
    mean_diff: float
    statistic: float | None
    p_value: float | None
    significant: bool
    note: str = ""


def paired_greater(a: np.ndarray, b: np.ndarray, alpha: float = 0.05, margin: float = 0.0) -> PairedTest:
    """The one-sided paired t-test that a exceeds b by more than `margin` (H0: mean(a - b) <= margin; margin 0 is
    scipy.stats.ttest_rel(a, b, alternative='greater')); zero-variance differences decided by their sign after the
    margin."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    d = a - b
    n = len(d)
    if n < 2:
        return PairedTest(n, float(d.mean()) if n else float("nan"), None, None, False,
                          f"not testable: {n} trial(s) in this condition (need at least 2)")
    if np.allclose(d, d[0]):
        sig = bool(d[0] > margin)
        return PairedTest(n, float(d.mean()), None, 0.0 if sig else 1.0, sig,
                          "no variance in the differences: decided by their size")
    from scipy import stats  # imported when a test runs: looking a study up stays light (tests/test_imports.py)

    res = stats.ttest_1samp(d, margin, alternative="greater")
    p = float(res.pvalue)
    return PairedTest(n, float(d.mean()), float(res.statistic), p, p < alpha)


@dataclass
class Tests:
    """One-sided t-tests over leading (resample) axes: statistic (NaN where undefined), p-value, significant."""

    statistic: np.ndarray
    p_value: np.ndarray
    significant: np.ndarray


def _decide(mean: np.ndarray, se: np.ndarray, df: np.ndarray, alpha: float) -> Tests:
    """t = mean / se against Student's t (df); zero spread (se ~ 0) is decided by the sign of the mean."""
    from scipy import stats  # as in paired_greater

    flat = se < 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(flat, np.nan, mean / np.where(flat, 1.0, se))
        p = np.where(flat, np.where(mean > 0, 0.0, 1.0), stats.t.sf(t, df))
    return Tests(t, p, np.where(flat, mean > 0, p < alpha))


def one_sample_greater(mean: np.ndarray, var: np.ndarray, n: int, alpha: float = 0.05,
                       margin: float = 0.0) -> Tests:
    """The one-sided one-sample t-test (mean > margin) from a sample's mean and variance (ddof 1), n >= 2."""
    return _decide(mean - margin, np.sqrt(var / n), np.full(np.shape(mean), n - 1), alpha)


def welch_greater(mean_a: np.ndarray, var_a: np.ndarray, n_a: int, mean_b: np.ndarray, var_b: np.ndarray,
                  n_b: int, alpha: float = 0.05, margin: float = 0.0) -> Tests:
    """Welch's one-sided t-test (mean a - mean b > margin) from two groups' means and variances (ddof 1), each
    n >= 2."""
    va, vb = var_a / n_a, var_b / n_b
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    return _decide(mean_a - mean_b - margin, np.sqrt(va + vb), np.where(np.isfinite(df), df, 1.0), alpha)


def paired_greater_many(d: np.ndarray, alpha: float = 0.05) -> Tests:
    """The one-sided paired t-test (mean of d > 0, scipy.stats.ttest_rel's) along the last axis (n >= 2)."""
    return one_sample_greater(d.mean(axis=-1), d.var(axis=-1, ddof=1), d.shape[-1], alpha)


def welch_greater_many(a: np.ndarray, b: np.ndarray, alpha: float = 0.05) -> Tests:
    """Welch's one-sided t-test (mean of a > mean of b; scipy.stats.ttest_ind(equal_var=False)'s) along the last
    axis of two independent groups (each n >= 2)."""
    return welch_greater(a.mean(axis=-1), a.var(axis=-1, ddof=1), a.shape[-1], b.mean(axis=-1),
                         b.var(axis=-1, ddof=1), b.shape[-1], alpha)
