"""Helpers for the comparison figures (matplotlib, Agg); each study draws its own (its `Comparison.plots`)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from grace.checkpoint import atomic_path  # noqa: E402

HUMAN_COLOR = "0.25"


def save(fig: plt.Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


def legend(fig: plt.Figure, axes: np.ndarray) -> None:
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
