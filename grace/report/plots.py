"""PNG plots of a run (matplotlib, Agg backend): bets by condition, utterances by goal x state, statuses, models."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from grace.extract.models import STATUSES  # noqa: E402
from grace.studies.study1 import CONDITIONS  # noqa: E402
from grace.studies.study2 import GOALS, STATES, UTTERANCES  # noqa: E402

STATUS_COLORS = {"ok": "#2e7d32", "partial": "#f9a825", "unparseable": "#c62828", "refused": "#6a1b9a"}
STATES1 = ("0", "1", "2", "3")


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _cond_label(access: str, observe: str) -> str:
    return f"access {access}, observe {observe}"


def posterior_by_condition(exp1: pd.DataFrame, exp2: pd.DataFrame | None, title: str, path: Path) -> Path:
    """Study 1: mean posterior bet on 0-3 per access/observe cell; Exp 1 (stated) beside Exp 2 (log-probs).

    Frames hold access, observe and p0..p3 columns.
    """
    cells = [(str(a), str(o)) for a, o in CONDITIONS]
    known = {(str(a), str(o)) for a, o in zip(exp1.get("access", []), exp1.get("observe", []), strict=False)}
    if not known & set(cells):  # design columns missing: one panel over all trials
        cells = [("?", "?")]
    fig, axes = plt.subplots(1, len(cells), figsize=(2.6 * len(cells) + 1, 3), sharey=True, squeeze=False)
    x = np.arange(4)
    for ax, (a, o) in zip(axes[0], cells, strict=True):
        for i, (label, df) in enumerate((("Exp 1 stated", exp1), ("Exp 2 log-prob", exp2))):
            if df is None or df.empty:
                continue
            sel = df if a == "?" else df[(df["access"].astype(str) == a) & (df["observe"].astype(str) == o)]
            vals = sel[[f"p{s}" for s in STATES1]].dropna()
            if vals.empty:
                continue
            mean = vals.mean().to_numpy()
            err = vals.std(ddof=0).to_numpy() / np.sqrt(len(vals))
            ax.bar(x + (i - 0.5) * 0.4, mean, 0.4, yerr=err, label=f"{label} (n={len(vals)})", capsize=2)
        ax.set_title(_cond_label(a, o) if a != "?" else "all trials (no design columns)", fontsize=8)
        ax.set_xticks(x, STATES1)
        ax.set_xlabel("state")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
        else:
            ax.text(0.5, 0.5, "no readable bets", ha="center", va="center", transform=ax.transAxes, fontsize=8)
    axes[0][0].set_ylabel("mean posterior probability")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def utterances_by_goal_state(exp1: pd.DataFrame, title: str, path: Path) -> Path:
    """Study 2: share of each chosen utterance per true state, one panel per goal. Frame: goal, state, utterance."""
    goals = [g for g in GOALS if "goal" in exp1 and (exp1["goal"] == g).any()] or ["?"]
    fig, axes = plt.subplots(1, len(goals), figsize=(4 * len(goals) + 1.5, 3.4), sharey=True, squeeze=False)
    cmap = plt.get_cmap("RdYlGn")
    colors = {u: cmap(i / 7) for i, u in enumerate(UTTERANCES)}
    for ax, goal in zip(axes[0], goals, strict=True):
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
            ax.bar(states, share, bottom=bottom, color=colors.get(u, "#bdbdbd"),
                   label=u or "not read", width=0.7)
            bottom += np.array(share)
        ax.set_title(f"goal: {goal}", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    axes[0][0].set_ylabel("share of replies")
    axes[0][-1].legend(fontsize=6, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def status_bars(rows: list[tuple[str, dict[str, int]]], path: Path) -> Path:
    """Stacked horizontal bars of extraction statuses, one bar per (label, counts)."""
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(rows) + 1.2))
    labels = [r[0] for r in rows]
    left = np.zeros(len(rows))
    for st in STATUSES:
        vals = np.array([r[1].get(st, 0) / max(1, sum(r[1].values())) for r in rows])
        ax.barh(labels, vals, left=left, color=STATUS_COLORS[st], label=st)
        left += vals
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of replies")
    ax.legend(fontsize=7, ncols=4, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    ax.invert_yaxis()
    return _save(fig, path)


def compare_study1(per_model: list[tuple[str, pd.DataFrame]], path: Path) -> Path:
    """Expected posterior (sum of state x probability) per access/observe cell, models side by side."""
    cells = [(str(a), str(o)) for a, o in CONDITIONS]
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(cells) * max(1, len(per_model)) / 2), 3.4))
    width = 0.8 / max(1, len(per_model))
    x = np.arange(len(cells))
    for i, (label, df) in enumerate(per_model):
        means = []
        for a, o in cells:
            sel = df[(df["access"].astype(str) == a) & (df["observe"].astype(str) == o)] if "access" in df else df
            vals = sel[[f"p{s}" for s in STATES1]].dropna()
            means.append(float((vals.to_numpy() @ np.arange(4)).mean()) if len(vals) else np.nan)
        ax.bar(x + (i - (len(per_model) - 1) / 2) * width, means, width, label=label)
    ax.set_xticks(x, [f"a{a} o{o}" for a, o in cells])
    ax.set_ylabel("expected posterior (states)")
    ax.set_ylim(0, 3)
    ax.legend(fontsize=7)
    ax.set_title("Study 1, Exp 1: expected posterior by access/observe, per model", fontsize=10)
    return _save(fig, path)


def compare_study2(per_model: list[tuple[str, pd.DataFrame]], path: Path) -> Path:
    """Share of each utterance per model (all trials), models side by side."""
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(per_model) + 3), 3.4))
    cmap = plt.get_cmap("RdYlGn")
    bottom = np.zeros(len(per_model))
    labels = [m for m, _ in per_model]
    for i, u in enumerate((*UTTERANCES, None)):
        share = np.array([(df["utterance"].isna().sum() if u is None else (df["utterance"] == u).sum())
                          / max(1, len(df)) for _, df in per_model])
        ax.bar(labels, share, bottom=bottom, color=cmap(i / 7) if u else "#bdbdbd", label=u or "not read")
        bottom += share
    ax.set_ylabel("share of replies")
    ax.legend(fontsize=6, bbox_to_anchor=(1.02, 1), loc="upper left")
    ax.set_title("Study 2, Exp 1: chosen utterances per model", fontsize=10)
    ax.tick_params(axis="x", labelsize=7)
    return _save(fig, path)
