"""Pure comparison measures: Jensen-Shannon divergence, Pearson r, paired tests, seeded bootstrap intervals.

Jensen-Shannon divergence uses log base 2, so it lies in [0, 1] (0: identical distributions). The overall
divergence is the unweighted mean over the cells compared. Bootstrap intervals resample trials within each
cell (stratified), with a seeded numpy Generator, and report the 2.5 and 97.5 percentiles.
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


@dataclass
class DistributionFit:
    """A model's cell distributions against the human ones, with bootstrap samples of each measure."""

    model: np.ndarray  # (cells, options): mean of per-trial distributions
    js_cells: np.ndarray  # (cells,)
    js: float
    r: float | None  # None: undefined (a constant side)
    js_cells_boot: np.ndarray  # (B, cells)
    js_boot: np.ndarray  # (B,)
    r_boot: np.ndarray  # (B,)


def fit_distributions(per_trial: list[np.ndarray], human: np.ndarray, n_boot: int = DEFAULT_BOOTSTRAP,
                      rng: np.random.Generator | None = None) -> DistributionFit:
    """Compare cells' mean distributions with `human` (cells, options); per_trial[i] is (n_i, options), n_i >= 1."""
    rng = rng or np.random.default_rng(DEFAULT_SEED)
    if len(per_trial) != len(human):
        raise ValueError("one array of per-trial distributions per human cell is needed")
    model = np.stack([t.mean(axis=0) for t in per_trial])
    js_cells = js_divergence(model, human)
    r = pearson(model.ravel(), human.ravel())
    boot = np.empty((n_boot, *model.shape))
    for c, trials in enumerate(per_trial):
        idx = rng.integers(0, len(trials), size=(n_boot, len(trials)))
        boot[:, c, :] = trials[idx].mean(axis=1)
    js_cells_boot = js_divergence(boot, human[None, :, :])
    return DistributionFit(
        model=model,
        js_cells=js_cells,
        js=float(js_cells.mean()),
        r=None if np.isnan(r) else float(r),
        js_cells_boot=js_cells_boot,
        js_boot=js_cells_boot.mean(axis=1),
        r_boot=pearson(boot.reshape(n_boot, -1), human.ravel()[None, :]),
    )


@dataclass
class PairedTest:
    """One-sided paired t-test that a > b across trials."""

    n: int
    mean_diff: float
    statistic: float | None
    p_value: float | None
    significant: bool
    note: str = ""


def paired_greater(a: np.ndarray, b: np.ndarray, alpha: float = 0.05) -> PairedTest:
    """scipy.stats.ttest_rel(a, b, alternative='greater'); zero-variance differences decided by their sign."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    d = a - b
    n = len(d)
    if n < 2:
        return PairedTest(n, float(d.mean()) if n else float("nan"), None, None, False,
                          f"not testable: {n} trial(s) in this condition (need at least 2)")
    if np.allclose(d, d[0]):
        sig = bool(d[0] > 0)
        return PairedTest(n, float(d.mean()), None, 0.0 if sig else 1.0, sig,
                          "no variance in the differences: decided by their sign")
    from scipy import stats  # imported when a test runs: looking a study up stays light (tests/test_imports.py)

    res = stats.ttest_rel(a, b, alternative="greater")
    p = float(res.pvalue)
    return PairedTest(n, float(d.mean()), float(res.statistic), p, p < alpha)


def paired_greater_boot(a: np.ndarray, b: np.ndarray, n_boot: int, rng: np.random.Generator,
                        alpha: float = 0.05) -> np.ndarray:
    """Bootstrap (resampling trials) of `paired_greater(...).significant`: a bool array of n_boot."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    if n < 2:
        return np.zeros(n_boot, dtype=bool)
    s = d[rng.integers(0, n, size=(n_boot, n))]
    mean = s.mean(axis=1)
    sd = s.std(axis=1, ddof=1)
    const = sd < 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / (sd / np.sqrt(n))
    from scipy import stats  # as in paired_greater

    p = stats.t.sf(t, df=n - 1)
    return np.where(const, mean > 0, p < alpha)
