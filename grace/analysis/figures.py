"""The human comparison's headline figures as Grace wrote them (compare.json, report.json), in the long form grace.R
writes its own (model_name, study, source, figure, key, value), and the check that both agree.

grace.R recomputes them from the all-models tables alone; this module reads what Grace's Python computed, so the two
implementations can be held against each other (tests/test_analysis_r.py): study 2's JS divergence per goal x state
cell, their mean, r and the model's proportions; study 1's finding tests (n, means, t, p, significant, reproduced),
the count reproduced, the mean bets per condition and knowledgeability; Exp 1 vs Exp 2 agreement (report.json's
pairs and agreeing pairs). Bootstrap intervals are left out (another random number generator gives others).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from grace.run import safe_name

Key = tuple[str, str, str, str, str]  # model_name, study, source, figure, key
TOLERANCE = 1e-6


def _study2(r: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    yield "n_responses", "", r["n_responses"]
    if r["source"] == "exp1":
        yield "unparseable", "", r["unparseable"]
    yield "cells_compared", "", r["cells_compared"]
    if r["cells_compared"]:
        yield "js", "", r["js"]
        yield "r", "", r["r"]
        yield "n_trials", "", r["n_trials"]
    for c in r["cells"]:
        cell = f"{c['goal']} / {c['state']}"
        yield "cell_js", cell, c["js"]
        yield "cell_n_trials", cell, c["n_trials"]
        for u, p in c["model"].items():
            yield "cell_model", f"{cell} / {u}", p


def _study1(r: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    for name in ("n_responses", "unparseable", "knowledge_unparseable", "n_trials", "reproduced"):
        yield name, "", r[name]
    for c in r["conditions"]:
        cond = f"access {c['access']}, observe {c['observe']}"
        yield "condition_n_trials", cond, c["n_trials"]
        for s, m in c["mean"].items():
            yield "condition_mean", f"{cond}, state {s}", m
    for f in r["findings"]:
        for name in ("n_trials", "mean_a", "mean_b", "mean_diff", "statistic", "p_value", "model_significant",
                     "reproduced"):
            yield f"finding_{name}", f["label"], f[name]
    for k in r["knowledge"]:
        if k["model_mean"] is not None:
            yield "knowledge_mean", f"access {k['access']}", k["model_mean"]
            yield "knowledge_n_trials", f"access {k['access']}", k["n_trials"]


STUDY_FIGURES = {"study1": _study1, "study2": _study2}


def _number(v: Any) -> float | None:
    if v is None:
        return None
    x = float(v)  # booleans as 1 / 0
    return None if math.isnan(x) else x


def python_figures(run_dir: Path) -> dict[Key, float]:
    """compare.json's and report.json's figures of RUN_DIR (missing ones left out, as grace.R leaves out NA)."""
    compare = json.loads((Path(run_dir) / "compare" / "compare.json").read_text(encoding="utf-8"))
    out: dict[Key, float | None] = {}
    for study, figures in STUDY_FIGURES.items():
        for r in compare.get(study, []):
            for name, key, value in figures(r):
                out[(r["model"], study, r["source"], name, key)] = _number(value)
    report = json.loads((Path(run_dir) / "report" / "report.json").read_text(encoding="utf-8"))
    models = {safe_name(r["model"]): r["model"] for s in STUDY_FIGURES for r in compare.get(s, [])}
    for folder, studies in report["models"].items():
        for study, r in studies.items():
            for pair, counts in (r["metrics"].get("agreement") or {}).items():
                model = models.get(folder, folder)
                out[(model, study, "exp1~exp2", "agreement_pairs", pair)] = float(counts["pairs"])
                out[(model, study, "exp1~exp2", "agreement_agree", pair)] = float(counts["agree"])
    return {k: v for k, v in out.items() if v is not None}


def r_figures(path: Path) -> dict[Key, float]:
    """grace.R's output CSV (NA values left out)."""
    df = pd.read_csv(path, dtype={"model_name": str, "study": str, "source": str, "figure": str, "key": str},
                     keep_default_na=False, na_values={"value": [""]})
    out: dict[Key, float] = {}
    for r in df.to_dict("records"):
        value = float(r["value"])
        if not math.isnan(value):
            out[(str(r["model_name"]), str(r["study"]), str(r["source"]), str(r["figure"]), str(r["key"]))] = value
    return out


def disagreements(python: dict[Key, float], r: dict[Key, float], tolerance: float = TOLERANCE) -> list[str]:
    """Every figure one side has and the other lacks, and every value further apart than `tolerance` (absolute,
    and relative above 1); empty when the two agree."""
    out = [f"only in Grace's JSON: {k} = {python[k]}" for k in sorted(python.keys() - r.keys())]
    out += [f"only in grace.R's: {k} = {r[k]}" for k in sorted(r.keys() - python.keys())]
    out += [f"{k}: Grace {python[k]!r} vs grace.R {r[k]!r}" for k in sorted(python.keys() & r.keys())
            if not math.isclose(python[k], r[k], rel_tol=tolerance, abs_tol=tolerance)]
    return out
