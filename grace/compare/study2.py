"""Study 2 (politeness): per goal x state cell the model's distribution over the 8 utterances, against humans.

Exp 2: per trial the option probabilities of the "utterance" question; a cell's distribution is their mean.
Exp 1: per trial the extracted choices (one-hot, averaged over its replicates); responses without a usable
utterance are counted and reported as the unparseable share, never folded in silently.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from grace.compare.human import CELLS, Study2Human
from grace.compare.metrics import DEFAULT_BOOTSTRAP, fit_distributions, interval
from grace.compare.outputs import StageOutputs
from grace.compare.schema import CellResult, Study2Result
from grace.studies.study2 import UTTERANCES

Cell = tuple[str, str]


def exp2_trials(out: StageOutputs) -> tuple[dict[Cell, list[np.ndarray]], list[str]]:
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


def exp1_trials(out: StageOutputs) -> tuple[dict[Cell, list[np.ndarray]], int, int, Counter[str]]:
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


def compare_study2(out: StageOutputs, human: Study2Human, n_boot: int = DEFAULT_BOOTSTRAP,
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
