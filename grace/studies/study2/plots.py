"""Study 2's plots: chosen utterances by goal x state in the report, per model and side by side, and the
comparison figure in the paper's layout (goal x state facets, the 8 utterances, humans beside each model)."""

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
from grace.studies.study2.goals import LABELS  # noqa: E402
from grace.studies.study2.human import Study2Human  # noqa: E402
from grace.studies.study2.results import Study2Result  # noqa: E402
from grace.studies.study2.study import STATES, UTTERANCES  # noqa: E402


def utterances_by_goal_state(exp1: pd.DataFrame, title: str, path: Path) -> Path | None:
    """Study 2: share of each chosen utterance per true state, one panel per goal (two panels a row, so the plot
    keeps a shape whose labels read in the UI's pane). Frame: goal, state, utterance. None when no reply's
    utterance was read (an all-grey plot says nothing a sentence would not)."""
    if "utterance" not in exp1 or exp1["utterance"].isna().all():
        return None
    goals = [g for g in LABELS if "goal" in exp1 and (exp1["goal"] == g).any()] or ["?"]
    cols = min(2, len(goals))
    rows = -(-len(goals) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(9.5, 3.4 * rows + 0.6), sharey=True, squeeze=False)
    cmap = plt.get_cmap("RdYlGn")
    colors = {u: cmap(i / 7) for i, u in enumerate(UTTERANCES)}
    for ax, goal in zip(axes.flat, goals, strict=False):
        sel = exp1 if goal == "?" else exp1[exp1["goal"] == goal]
        states = list(STATES) if "state" in sel else ["all"]
        bottom = np.zeros(len(states))
        for u in (*UTTERANCES, None):
            share = []
            for s in states:
                cell = sel if s == "all" else sel[sel["state"] == s]
                n = len(cell)
                k = cell["utterance"].isna().sum() if u is None else (cell["utterance"] == u).sum()
                share.append(k / n if n else 0.0)
            ax.bar(states, share, bottom=bottom, color=colors[u] if u else "#bdbdbd",
                   label=u or "not read", width=0.7)
            bottom += np.array(share)
        ax.set_title(f"goal: {goal}", fontsize=10)
        ax.tick_params(axis="x", labelsize=9)
    for ax in axes.flat[len(goals):]:
        ax.axis("off")
    for row in axes:
        row[0].set_ylabel("share of replies")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if len(goals) < rows * cols:  # the legend in the empty panel
        axes.flat[-1].legend(handles, labels, fontsize=9, loc="center")
    else:
        fig.legend(handles, labels, fontsize=8, loc="lower center", ncols=5)
    fig.suptitle(title, fontsize=11)
    return save(fig, path)


def compare_models(per_model: list[tuple[str, pd.DataFrame]], path: Path) -> Path | None:
    """Share of each utterance per model (all trials), models side by side; None when no model's utterance was
    read."""
    if all(df.empty or df["utterance"].isna().all() for _, df in per_model):
        return None
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(per_model) + 3), 3.4))
    cmap = plt.get_cmap("RdYlGn")
    bottom = np.zeros(len(per_model))
    labels = [f"{m}\n(n={len(df)})" for m, df in per_model]
    for i, u in enumerate((*UTTERANCES, None)):
        share = np.array([(df["utterance"].isna().sum() if u is None else (df["utterance"] == u).sum())
                          / max(1, len(df)) for _, df in per_model])
        ax.bar(labels, share, bottom=bottom, color=cmap(i / 7) if u else "#bdbdbd", label=u or "not read")
        bottom += share
    ax.set_ylabel("share of replies")
    ax.legend(fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")
    ax.set_title("Study 2, Exp 1: chosen utterances per model", fontsize=10)
    ax.tick_params(axis="x", labelsize=9)
    return save(fig, path)


def plot_study2(results: list[Study2Result], human: Study2Human, path: Path, title: str = "") -> Path:
    """Facets goal (rows) x state (columns); the 8 utterances on x; human and each model side by side."""
    series = [r for r in results if r.status == "ok"]
    fig, axes = plt.subplots(len(LABELS), len(STATES), figsize=(11, 8), sharex=True, sharey=True,
                             squeeze=False, layout="constrained")
    width = 0.8 / (1 + len(series))
    x = np.arange(len(UTTERANCES))
    colors = plt.get_cmap("tab10")
    for i, goal in enumerate(LABELS):
        for j, state in enumerate(STATES):
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
                        ha="right", va="top", fontsize=8, color=colors(k))
            if i == 0:
                ax.set_title(state)
            if j == 0:
                ax.set_ylabel(f"{goal}\nproportion")
            ax.set_ylim(0, 1)
            ax.set_xticks(x, [u.replace("It was", "").replace("It ", "").strip() for u in UTTERANCES],
                          rotation=60, ha="right", fontsize=9)
    fig.suptitle(title or "Study 2: utterance choice by goal and state (humans: Yoon et al. 2020)")
    legend(fig, axes)
    return save_figure(fig, path)
