"""Comparison figures (matplotlib, Agg): study 2 in the paper's layout and study 1 bets by condition."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from grace.checkpoint import atomic_path  # noqa: E402
from grace.compare.human import GOALS, Study1Human, Study2Human  # noqa: E402
from grace.compare.schema import Study1Result, Study2Result  # noqa: E402
from grace.studies.study1 import STATES as STUDY1_STATES  # noqa: E402
from grace.studies.study2 import STATES as STUDY2_STATES  # noqa: E402
from grace.studies.study2 import UTTERANCES  # noqa: E402

HUMAN_COLOR = "0.25"


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


def _legend(fig: plt.Figure, axes: np.ndarray) -> None:
    """One legend for the figure, from every facet's labelled artists (no duplicates)."""
    handles: list = []
    labels: list[str] = []
    for ax in np.ravel(axes):
        for hd, lb in zip(*ax.get_legend_handles_labels(), strict=True):
            if lb not in labels:
                handles.append(hd)
                labels.append(lb)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 5))


def plot_study2(results: list[Study2Result], human: Study2Human, path: Path, title: str = "") -> Path:
    """Facets goal (rows) x state (columns); the 8 utterances on x; human and each model side by side."""
    series = [r for r in results if r.status == "ok"]
    fig, axes = plt.subplots(len(GOALS), len(STUDY2_STATES), figsize=(16, 10), sharex=True, sharey=True,
                             squeeze=False, layout="constrained")
    width = 0.8 / (1 + len(series))
    x = np.arange(len(UTTERANCES))
    colors = plt.get_cmap("tab10")
    for i, goal in enumerate(GOALS):
        for j, state in enumerate(STUDY2_STATES):
            ax = axes[i, j]
            h = human.cells.get((goal, state))
            if h is not None:
                ax.bar(x - 0.4 + width / 2, h, width, color=HUMAN_COLOR, label="humans")
            for k, r in enumerate(series):
                cell = next((c for c in r.cells if c.goal == goal and c.state == state), None)
                if cell is None:
                    continue
                ax.bar(x - 0.4 + width * (k + 1.5), [cell.model[u] for u in UTTERANCES], width, color=colors(k),
                       label=f"{r.model} ({r.source})")
                ax.text(0.98, 0.95 - 0.09 * k, f"JS {cell.js:.2f} (n={cell.n_trials})", transform=ax.transAxes,
                        ha="right", va="top", fontsize=7, color=colors(k))
            if i == 0:
                ax.set_title(state)
            if j == 0:
                ax.set_ylabel(f"{goal}\nproportion")
            ax.set_ylim(0, 1)
            ax.set_xticks(x, [u.replace("It was", "").replace("It ", "").strip() for u in UTTERANCES],
                          rotation=60, ha="right", fontsize=8)
    fig.suptitle(title or "Study 2: utterance choice by goal and state (humans: Yoon et al. 2020)")
    _legend(fig, axes)
    return _save(fig, path)


def plot_study1(results: list[Study1Result], human: Study1Human, path: Path) -> Path:
    """Mean posterior bets over 0-3 per (access, observe) condition; human findings written in each facet;
    knowledgeability by access against the human means in the last column."""
    series = [r for r in results if r.status == "ok"]
    fig, axes = plt.subplots(3, 4, figsize=(16, 11), squeeze=False, layout="constrained")
    colors = plt.get_cmap("tab10")
    width = 0.8 / max(1, len(series))
    x = np.arange(len(STUDY1_STATES))
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
                means = [cond.mean[s] for s in STUDY1_STATES]
                err = np.array([[m - (cond.ci[s] or (m, m))[0], (cond.ci[s] or (m, m))[1] - m]
                                for s, m in zip(STUDY1_STATES, means, strict=True)]).T
                ax.bar(x - 0.4 + width * (k + 0.5), means, width, yerr=np.clip(err, 0, None), capsize=2,
                       color=colors(k), label=f"{r.model} ({r.source})")
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
            ax.set_xticks(x, STUDY1_STATES)
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
    _legend(fig, axes[:, :3])
    return _save(fig, path)
