"""Study 1's plots: posterior bets by (access, observe) in the report, per model and side by side, and the
comparison figure (bets by condition against the human findings, knowledgeability by access)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from grace.compare.plots import HUMAN_COLOR, legend  # noqa: E402
from grace.compare.plots import save as save_figure  # noqa: E402
from grace.report.plots import save  # noqa: E402
from grace.studies.study1.human import Study1Human  # noqa: E402
from grace.studies.study1.results import Study1Result  # noqa: E402
from grace.studies.study1.study import CONDITIONS, STATES  # noqa: E402


def _cond_label(access: str, observe: str) -> str:
    return f"access {access}, observe {observe}"


def _has_bets(df: pd.DataFrame | None) -> bool:
    return df is not None and not df.empty and not df[[f"p{s}" for s in STATES]].isna().all().all()


def posterior_by_condition(exp1: pd.DataFrame, exp2: pd.DataFrame | None, title: str, path: Path) -> Path | None:
    """Study 1: mean posterior bet on 0-3 per access/observe cell; Exp 1 (stated) beside Exp 2 (log-probs); the
    six cells in two rows of three (a shape whose labels read in the UI's pane). None when there is nothing to
    draw (no readable bets, no Exp 2).

    Frames hold access, observe and p0..p3 columns.
    """
    if not (_has_bets(exp1) or _has_bets(exp2)):
        return None
    cells = [(str(a), str(o)) for a, o in CONDITIONS]
    known = {(str(a), str(o)) for a, o in zip(exp1.get("access", []), exp1.get("observe", []), strict=False)}
    if not known & set(cells):  # design columns missing: one panel over all trials
        cells = [("?", "?")]
    cols = min(3, len(cells))
    rows = -(-len(cells) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.1 * cols + 0.6, 2.8 * rows + 0.6), sharey=True, squeeze=False)
    x = np.arange(4)
    for ax, (a, o) in zip(axes.flat, cells, strict=True):
        for i, (label, df) in enumerate((("Exp 1 stated", exp1), ("Exp 2 log-prob", exp2))):
            if df is None or df.empty:
                continue
            sel = df if a == "?" else df[(df["access"].astype(str) == a) & (df["observe"].astype(str) == o)]
            vals = sel[[f"p{s}" for s in STATES]].dropna()
            if vals.empty:
                continue
            mean = vals.mean().to_numpy()
            err = vals.std(ddof=0).to_numpy() / np.sqrt(len(vals))
            ax.bar(x + (i - 0.5) * 0.4, mean, 0.4, yerr=err, label=f"{label} (n={len(vals)})", capsize=2)
        ax.set_title(_cond_label(a, o) if a != "?" else "all trials (no design columns)", fontsize=10)
        ax.set_xticks(x, STATES)
        ax.set_xlabel("state")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no readable bets", ha="center", va="center", transform=ax.transAxes, fontsize=9)
    for row in axes:
        row[0].set_ylabel("mean posterior")
    fig.suptitle(title, fontsize=11)
    return save(fig, path)


def compare_models(per_model: list[tuple[str, pd.DataFrame]], path: Path) -> Path | None:
    """Expected posterior (sum of state x probability) per access/observe cell, models side by side; None when
    no model's replies had readable bets."""
    if not any(_has_bets(df) for _, df in per_model):
        return None
    cells = [(str(a), str(o)) for a, o in CONDITIONS]
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(cells) * max(1, len(per_model)) / 2), 3.4))
    width = 0.8 / max(1, len(per_model))
    x = np.arange(len(cells))
    for i, (label, df) in enumerate(per_model):
        means = []
        for a, o in cells:
            sel = df[(df["access"].astype(str) == a) & (df["observe"].astype(str) == o)] if "access" in df else df
            vals = sel[[f"p{s}" for s in STATES]].dropna()
            means.append(float((vals.to_numpy() @ np.arange(4)).mean()) if len(vals) else np.nan)
        n = len(df[[f"p{s}" for s in STATES]].dropna())
        ax.bar(x + (i - (len(per_model) - 1) / 2) * width, means, width, label=f"{label} (n={n} readable)")
    ax.set_xticks(x, [f"a{a} o{o}" for a, o in cells])
    ax.set_ylabel("expected posterior (states)")
    ax.set_ylim(0, 3)
    ax.legend(fontsize=7)
    ax.set_title("Study 1, Exp 1: expected posterior by access/observe, per model", fontsize=10)
    return save(fig, path)


def plot_study1(results: list[Study1Result], human: Study1Human, path: Path) -> Path:
    """Mean posterior bets over 0-3 per (access, observe) condition; human findings written in each facet;
    knowledgeability by access against the human means in the last column."""
    series = [r for r in results if r.status == "ok"]
    fig, axes = plt.subplots(3, 4, figsize=(12, 9), squeeze=False, layout="constrained")
    colors = plt.get_cmap("tab10")
    width = 0.8 / max(1, len(series))
    x = np.arange(len(STATES))
    for access in (1, 2, 3):
        for observe in (1, 2, 3):
            ax = axes[access - 1, observe - 1]
            if observe > access:
                ax.axis("off")
                continue
            for k, r in enumerate(series):
                cond = next((c for c in r.conditions if c.access == access and c.observe == observe), None)
                if cond is None:
                    continue
                means = [cond.mean[s] for s in STATES]
                err = np.array([[m - (cond.ci[s] or (m, m))[0], (cond.ci[s] or (m, m))[1] - m]
                                for s, m in zip(STATES, means, strict=True)]).T
                has_ci = all(cond.ci.get(s) is not None for s in STATES)
                ax.bar(x - 0.4 + width * (k + 0.5), means, width, yerr=np.clip(err, 0, None) if has_ci else None,
                       capsize=2, color=colors(k), label=f"{r.model} ({r.source})")
                if cond.n_trials < 2:  # no error bar: not a precise value, a lone trial
                    ax.text(x[0] - 0.4 + width * (k + 0.5), min(means[0] + 3, 60), f"n={cond.n_trials}, no interval",
                            rotation=90, fontsize=6, ha="center", va="bottom", color=colors(k))
            lines = []
            for f in human.findings:
                if f.access == access and f.observe == observe:
                    marks = "".join(
                        ("✓" if fr.reproduced else "✗")
                        for r in series for fr in r.findings
                        if (fr.access, fr.observe, fr.state_a, fr.state_b) == (f.access, f.observe, f.state_a,
                                                                                f.state_b))
                    lines.append(f"humans {f.state_a}>{f.state_b}: {'yes' if f.humans else 'no'}  {marks}")
            if lines:
                ax.text(0.98, 0.97, "\n".join(lines), transform=ax.transAxes, ha="right", va="top", fontsize=8,
                        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.6"})
            ax.set_title(f"access {access}, said '{['one', 'two', 'three'][observe - 1]}'", fontsize=10)
            ax.set_xticks(x, STATES)
            ax.set_ylim(0, 100)
            ax.set_xlabel("state (how many)")
            if observe == 1:
                ax.set_ylabel("mean bet (of 100)")
    ax = axes[0, 3]
    accesses = [1, 2, 3]
    hum = [human.knowledgeability.get(a, (np.nan, None))[0] for a in accesses]
    ax.plot(accesses, hum, "o-", color=HUMAN_COLOR, label="humans", lw=2)
    for k, r in enumerate(series):
        ys = [next((kr.model_mean for kr in r.knowledge if kr.access == a), None) for a in accesses]
        ax.plot(accesses, [np.nan if y is None else y for y in ys], "s--", color=colors(k),
                label=f"{r.model} ({r.source})")
    ax.set_xticks(accesses)
    ax.set_ylim(0, 100)
    ax.set_xlabel("access")
    ax.set_title("knowledgeability (bet speaker knows)", fontsize=10)
    ax.legend(fontsize=7)
    for ax in (axes[1, 3], axes[2, 3]):
        ax.axis("off")
    summary = "\n".join(f"{r.model} ({r.source}): {r.reproduced}/{r.findings_total} findings" for r in series)
    axes[1, 3].text(0, 1, summary, va="top", fontsize=9)
    fig.suptitle("Study 1: posterior bets by condition (human findings: Goodman & Stuhlmüller 2013; "
                 "✓ reproduced, ✗ not)")
    legend(fig, axes[:, :3])
    return save_figure(fig, path)
