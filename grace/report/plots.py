"""PNG plots of a run (matplotlib, Agg backend): the extraction statuses; the studies draw their own with `save`."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from grace.statuses import EXTRACTION_STATUSES as STATUSES  # noqa: E402

STATUS_COLORS = {"ok": "#2e7d32", "partial": "#f9a825", "unparseable": "#c62828", "refused": "#6a1b9a"}


def save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def status_bars(rows: list[tuple[str, dict[str, int]]], path: Path) -> Path:
    """Stacked horizontal bars of extraction statuses, one bar per (label, counts)."""
    # at least 3.2 in high: shown 630 px wide in the UI, a 2-bar plot stays about 290 px high, its labels legible
    fig, ax = plt.subplots(figsize=(7, max(3.2, 0.5 * len(rows) + 1.2)))
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
    return save(fig, path)
