"""Study 2 (politeness): per goal x state cell the model's distribution over the 8 utterances, against humans.

Exp 2: per trial the option probabilities of the "utterance" question; a cell's distribution is their mean.
Exp 1: per trial the extracted choices (one-hot, averaged over its replicates); responses without a usable
utterance are counted and reported as the unparseable share, never folded in silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from grace.compare.human import Table
from grace.compare.metrics import DEFAULT_BOOTSTRAP, fit_distributions, interval
from grace.compare.outputs import StudyOutputs
from grace.compare.plugin import Comparison
from grace.compare.schema import RankedRow
from grace.studies.study2 import human as human_data
from grace.studies.study2.human import CELLS, Study2Human
from grace.studies.study2.results import CellResult, Study2Result
from grace.studies.study2.study import UTTERANCES
from grace.ui_format import MISSING, counts, md_table, sig
from grace.ui_format import interval as shown_interval

Cell = tuple[str, str]


def exp2_trials(out: StudyOutputs) -> tuple[dict[Cell, list[np.ndarray]], list[str]]:
    """Per cell, the per-trial distributions over UTTERANCES from Exp 2 records; plus problems found."""
    cells: dict[Cell, list[np.ndarray]] = {}
    problems: list[str] = []
    for rec in out.exp2:
        cond = out.conditions.get(rec.trial_id)
        q = rec.questions.get("utterance")
        if cond is None:
            continue
        if q is None:
            problems.append(f"{rec.trial_id}: no 'utterance' question in the Exp 2 record")
            continue
        p = np.array([q.probs.get(u, 0.0) for u in UTTERANCES], dtype=float)
        if not np.isfinite(p).all() or p.sum() <= 0:
            problems.append(f"{rec.trial_id}: Exp 2 probabilities unusable")
            continue
        cells.setdefault((cond["goal"], cond["state"]), []).append(p / p.sum())
    return cells, problems


def exp1_trials(out: StudyOutputs) -> tuple[dict[Cell, list[np.ndarray]], int, int, Counter[str]]:
    """Per cell the per-trial choice frequencies; responses read; responses without a usable utterance."""
    by_trial: dict[str, list[int | None]] = {}
    statuses: Counter[str] = Counter()
    n = 0
    for row in out.extracted:
        if row["trial_id"] not in out.conditions:
            continue
        n += 1
        statuses[row["status"]] += 1
        u = row.get("utterance")
        usable = row["status"] in {"ok", "partial"} and isinstance(u, str) and u in UTTERANCES
        by_trial.setdefault(row["trial_id"], []).append(UTTERANCES.index(u) if usable else None)
    cells: dict[Cell, list[np.ndarray]] = {}
    unparseable = 0
    for tid, choices in by_trial.items():
        good = [c for c in choices if c is not None]
        unparseable += len(choices) - len(good)
        if not good:
            continue
        freq = np.bincount(good, minlength=len(UTTERANCES)) / len(good)
        cond = out.conditions[tid]
        cells.setdefault((cond["goal"], cond["state"]), []).append(freq)
    return cells, n, unparseable, statuses


def compare_cells(model: str, source: str, cells: dict[Cell, list[np.ndarray]], human: Study2Human,
                  n_boot: int = DEFAULT_BOOTSTRAP, rng: np.random.Generator | None = None) -> Study2Result:
    """JS divergence per cell and overall, Pearson r over the cell x utterance proportions, bootstrap CIs."""
    human_cells = [c for c in CELLS if c in human.cells]
    compared = [c for c in human_cells if cells.get(c)]
    missing = [f"{g} / {s}" for g, s in human_cells if not cells.get((g, s))]
    res = Study2Result(model=model, source=source, status="ok", cells_missing=missing,
                       n_trials=sum(len(cells.get(c, [])) for c in compared), cells_compared=len(compared))
    if not compared:
        res.status = "no-data"
        res.message = (f"no trials in any of the {len(human_cells)} goal x state cells of the human data"
                       if not cells else "none of the model's cells is in the human data")
        return res
    fit = fit_distributions([np.stack(cells[c]) for c in compared], np.stack([human.cells[c] for c in compared]),
                            n_boot=n_boot, rng=rng)
    res.js, res.js_ci = fit.js, interval(fit.js_boot, fit.js, (0.0, 1.0))
    res.r, res.r_ci = fit.r, interval(fit.r_boot, fit.r, (-1.0, 1.0))
    if fit.r is None:
        res.r_note = "r undefined: the model's proportions are constant across all cells and utterances"
    if missing:
        res.message = (f"compared over {len(compared)} of {len(human_cells)} cells; no trials for: "
                       f"{', '.join(missing)}")
    for i, (g, s) in enumerate(compared):
        res.cells.append(CellResult(
            goal=g, state=s, n_trials=len(cells[(g, s)]),
            model=dict(zip(UTTERANCES, map(float, fit.model[i]), strict=True)),
            human=dict(zip(UTTERANCES, map(float, human.cells[(g, s)]), strict=True)),
            js=float(fit.js_cells[i]), js_ci=interval(fit.js_cells_boot[:, i], float(fit.js_cells[i]), (0.0, 1.0)),
        ))
    return res


def compare_study2(out: StudyOutputs, human: Study2Human, n_boot: int = DEFAULT_BOOTSTRAP,
                   rng: np.random.Generator | None = None) -> list[Study2Result]:
    """One result per source present (exp2, exp1) for this model's study 2 outputs."""
    results = []
    if out.exp2_present:
        cells, problems = exp2_trials(out)
        res = compare_cells(out.model, "exp2", cells, human, n_boot, rng)
        res.n_responses = len(out.exp2)
        res.status_counts = {"ok": len(out.exp2), **out.exp2_not_ok}
        if out.exp2_not_ok:
            res.message = "; ".join(filter(None, [res.message, "left out (failed records): " + ", ".join(
                f"{k} {v}" for k, v in out.exp2_not_ok.items())]))
        if problems:
            res.message = "; ".join(filter(None, [res.message, f"{len(problems)} record(s) unusable: {problems[0]}"]))
        if not out.exp2 and res.status == "no-data":
            res.message = "no Exp 2 record with status ok"
        results.append(res)
    if out.exp1_present:
        cells, n, unparseable, statuses = exp1_trials(out)
        res = compare_cells(out.model, "exp1", cells, human, n_boot, rng)
        res.n_responses, res.unparseable, res.status_counts = n, unparseable, dict(statuses)
        res.unparseable_share = unparseable / n if n else None
        if n and unparseable == n:
            res.status = "all-unparseable"
            res.message = (f"all {n} extracted responses are unparseable (statuses: {dict(statuses)}): "
                           "nothing to compare")
        elif not n:
            res.status = "no-data"
            res.message = "no extracted responses for trials of known condition"
        results.append(res)
    return results


def markdown(r2: Study2Result) -> list[str]:
    """One result's section of compare.md: per goal x state cell, its divergence and the top choices."""
    out = [f"## Study 2: {r2.model} ({r2.source})", ""]
    if r2.source == "exp1":
        share = MISSING if r2.unparseable_share is None else f"{100 * r2.unparseable_share:.1f}"
        out.append(f"{r2.n_responses} responses, {r2.unparseable} unparseable ({share}%); "
                   f"statuses: {counts(r2.status_counts)}.")
    if r2.message or r2.r_note:
        out.append(f"Note: {'; '.join(filter(None, [r2.message, r2.r_note]))}")
    cells = []
    for c in r2.cells:
        top_m = max(c.model, key=lambda u: c.model[u])
        top_h = max(c.human, key=lambda u: c.human[u])
        cells.append([c.goal, c.state, str(c.n_trials), f"{sig(c.js)} {shown_interval(c.js_ci)}",
                      f"{top_m} ({c.model[top_m]:.2f})", f"{top_h} ({c.human[top_h]:.2f})"])
    return [*out, "", *md_table(["goal", "state", "n", "JS [95% CI]", "top model choice", "top human choice"],
                                cells, empty=f"No goal x state cell to compare: {r2.message or 'no usable trials'}."),
            ""]


class Study2Comparison(Comparison):
    """Per goal x state cell the model's distribution over the 8 utterances against the humans'."""

    order = 0  # the ranking leads with study 2's divergence
    measures = ("js", "r")
    legend = ("JS divergence: Jensen-Shannon (bits, 0 = identical) per goal x state cell, mean over cells. "
              "r: Pearson over the cell x utterance proportions.")
    kinds = human_data.KINDS
    formats = human_data.FORMATS

    def default_files(self, folder: Path) -> list[Path]:
        return human_data.default_files(folder)

    def read_human(self, kind: str, table: Table, current: Any) -> Study2Human:
        return human_data.read(kind, table)

    def refuse_header(self, table: Table) -> None:
        human_data.refuse_header(table)

    def sources(self, human: Study2Human) -> dict[str, str]:
        return {"study2": human.source}

    def compare(self, out: StudyOutputs, human: Study2Human, alpha: float, n_boot: int,
                rng: np.random.Generator) -> list[Study2Result]:
        return compare_study2(out, human, n_boot, rng)

    def rank(self, results: list[Study2Result], variant_of: Callable[[str], str | None]) -> list[RankedRow]:
        """By JS divergence, lowest (most human-like) first."""
        s2 = sorted(results, key=lambda r: (r.status != "ok", r.js if r.js is not None else np.inf, r.model,
                                             r.source))
        return [RankedRow(rank=i, model=r.model, variant_of=variant_of(r.model), study="study2", source=r.source,
                          status=r.status, js=r.js, js_ci=r.js_ci, r=r.r, r_ci=r.r_ci,
                          unparseable_share=r.unparseable_share, message=r.message or r.r_note)
                for i, r in enumerate(s2, start=1)]

    def markdown(self, results: list[Study2Result]) -> list[str]:
        return [line for r in results for line in markdown(r)]

    def plots(self, results: list[Study2Result], human: Study2Human, out_dir: Path) -> list[Path]:
        # plotting is imported when drawn, not when the study is looked up (tests/test_imports.py)
        from grace.studies.study2.plots import plot_study2

        drawn = []
        for source in ("exp2", "exp1"):
            res = [r for r in results if r.source == source and r.status == "ok"]
            if res:
                what = "Exp 2: option probabilities" if source == "exp2" else "Exp 1: extracted choices"
                title = f"Study 2 ({what}) vs humans (Yoon et al. 2020)"
                drawn.append(plot_study2(res, human, out_dir / f"study2_{source}.png", title))
        return drawn
