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

from grace.compare.differences import paired_differences
from grace.compare.human import Table
from grace.compare.metrics import DEFAULT_BOOTSTRAP, distribution_measures, interval
from grace.compare.outputs import StudyOutputs
from grace.compare.plugin import Comparison
from grace.compare.resample import Moments, Trials, draw, no_interval, shown, thin
from grace.compare.schema import Difference, RankedRow, Reference
from grace.studies.study2 import human as human_data
from grace.studies.study2.findings import FINDINGS, MIN_EFFECT, Finding, decide, effect
from grace.studies.study2.human import CELLS, Study2Human
from grace.studies.study2.results import CellResult, FindingResult, Study2Result
from grace.studies.study2.study import UTTERANCES
from grace.ui_format import MISSING, counts, md_escape, md_table, sig

Cell = tuple[str, str]
SOURCES = ("exp2", "exp1")
TESTS = {
    "more": f"Welch t-test, one-sided (first goal > second by more than {MIN_EFFECT:g}), trials of 0 and 1 heart "
            "pooled",
    "most": f"paired t-test per trial, one-sided, the literal utterance against each of the 7 others (each ahead by "
            f"more than {MIN_EFFECT:g}; all significant)",
}


def exp2_trials(out: StudyOutputs) -> tuple[Trials[Cell], list[str]]:
    """Per cell the trials' distributions over UTTERANCES from Exp 2 records (one replicate each); problems found."""
    return out.once("study2-exp2", lambda: _exp2_trials(out))


def exp1_trials(out: StudyOutputs) -> tuple[Trials[Cell], int, int, Counter[str]]:
    """Per cell the trials' choices, one one-hot row per usable replicate; responses read; responses without a
    usable utterance (left out of the trial, counted)."""
    return out.once("study2-exp1", lambda: _exp1_trials(out))


def _exp2_trials(out: StudyOutputs) -> tuple[Trials[Cell], list[str]]:
    rows: list[tuple[Cell, str, np.ndarray]] = []
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
        rows.append(((cond["goal"], cond["state"]), rec.trial_id, p / p.sum()))
    return Trials[Cell].collect(rows), problems


def _exp1_trials(out: StudyOutputs) -> tuple[Trials[Cell], int, int, Counter[str]]:
    rows: list[tuple[Cell, str, np.ndarray]] = []
    statuses: Counter[str] = Counter()
    n = unparseable = 0
    eye = np.eye(len(UTTERANCES))
    for row in out.extracted:
        cond = out.conditions.get(row["trial_id"])
        if cond is None:
            continue
        n += 1
        statuses[row["status"]] += 1
        u = row.get("utterance")
        if row["status"] in {"ok", "partial"} and isinstance(u, str) and u in UTTERANCES:
            rows.append(((cond["goal"], cond["state"]), row["trial_id"], eye[UTTERANCES.index(u)]))
        else:
            unparseable += 1
    return Trials[Cell].collect(rows), n, unparseable, statuses


def _trials(out: StudyOutputs, source: str) -> Trials[Cell]:
    return exp2_trials(out)[0] if source == "exp2" else exp1_trials(out)[0]


def _present(out: StudyOutputs, source: str) -> bool:
    return out.exp2_present if source == "exp2" else out.exp1_present


def _testable(f: Finding, trials: Trials[Cell]) -> bool:
    return all(trials.n(c) >= 2 for c in f.cells)


def reproduced_count(cells: dict[Cell, Moments], trials: Trials[Cell], alpha: float) -> np.ndarray:
    """(...,) the number of findings reproduced, over the leading (resample) axes of the cells' moments; a finding
    with a cell of fewer than 2 trials counts as not reproduced."""
    shape = next(iter(cells.values())).s1.shape[:-1] if cells else ()
    k = np.zeros(shape)
    for f in FINDINGS:
        if _testable(f, trials):
            k = k + decide(f, cells, alpha).significant
    return k


def score_findings(res: Study2Result, trials: Trials[Cell], human: Study2Human, alpha: float,
                  draws: dict[Cell, Moments] | None) -> None:
    """Each finding's effect, test and interval on the model's trials (res.findings, reproduced k of n)."""
    point = trials.point()
    untestable = []
    for f in FINDINGS:
        h = human.finding(f.key)
        fr = FindingResult(key=f.key, label=f.label, test=TESTS[f.kind], n_trials=sum(trials.n(c) for c in f.cells),
                           min_effect=MIN_EFFECT)
        if h is not None:
            fr.human_first, fr.human_second, fr.human_effect = h.first, h.second, h.difference
            fr.human_ci, fr.human_source = h.ci, h.source
        if not _testable(f, trials):
            fr.note = "not testable: " + ", ".join(f"{g} / {s}: n={trials.n((g, s))}" for g, s in f.cells
                                                  if trials.n((g, s)) < 2) + " (need at least 2 trials)"
            untestable.append(f.key)
            if all(trials.n(c) for c in f.cells):
                first, second, eff = effect(f, point)
                fr.model_first, fr.model_second, fr.effect = float(first[0]), float(second[0]), float(eff[0])
            res.findings.append(fr)
            continue
        first, second, eff = effect(f, point)
        t = decide(f, point, alpha)
        fr.testable = True
        fr.model_first, fr.model_second, fr.effect = float(first[0]), float(second[0]), float(eff[0])
        fr.statistic = None if np.isnan(t.statistic[0]) else float(t.statistic[0])
        fr.p_value, fr.significant = float(t.p_value[0]), bool(t.significant[0])
        fr.reproduced = fr.significant
        if fr.statistic is None:
            fr.note = f"no variance across trials: decided by whether the effect exceeds {MIN_EFFECT:g}"
        if draws is not None:
            fr.effect_ci = interval(effect(f, draws)[2])
        res.findings.append(fr)
    res.findings_total = len(FINDINGS)
    res.reproduced = sum(f.reproduced for f in res.findings)
    if untestable:
        res.findings_no_interval = f"{len(untestable)} not testable: n<2, no interval"
    elif draws is not None:
        res.reproduced_ci = interval(reproduced_count(draws, trials, alpha))


def compare_cells(model: str, source: str, trials: Trials[Cell], human: Study2Human, alpha: float = 0.05,
                  n_boot: int = DEFAULT_BOOTSTRAP, rng: np.random.Generator | None = None) -> Study2Result:
    """JS divergence per cell and overall, Pearson r over the cell x utterance proportions, the findings; bootstrap
    intervals resampling trials within cells (and replicates within trials), withheld where a cell has n < 2."""
    rng = rng or np.random.default_rng()
    human_cells = [c for c in CELLS if c in human.cells]
    compared = [c for c in human_cells if trials.n(c)]
    missing = [f"{g} / {s}" for g, s in human_cells if not trials.n((g, s))]
    res = Study2Result(model=model, source=source, status="ok", cells_missing=missing,
                       n_trials=sum(trials.n(c) for c in compared), cells_compared=len(compared))
    if not compared:
        res.status = "no-data"
        res.message = (f"no trials in any of the {len(human_cells)} goal x state cells of the human data"
                       if not trials.strata else "none of the model's cells is in the human data")
        return res
    sub = trials.restrict(compared)
    h = np.stack([human.cells[c] for c in compared])
    point = sub.point()
    js_cells, js, r = distribution_measures(np.stack([point[c].mean for c in compared], axis=-2), h)
    res.js, res.r = float(js[0]), None if np.isnan(r[0]) else float(r[0])
    draws = draw(sub, n_boot, rng) if n_boot else None
    few = thin(sub)
    if draws is not None:
        b_cells, b_js, b_r = distribution_measures(np.stack([draws[c].mean for c in compared], axis=-2), h)
        if few:
            res.no_interval = no_interval(few, len(compared))
        else:
            res.js_ci = interval(b_js, res.js, (0.0, 1.0))
            res.r_ci = interval(b_r, res.r, (-1.0, 1.0))
    if res.r is None:
        res.r_note = "r undefined: the model's proportions are constant across all cells and utterances"
    if human.ceiling is not None and human.ceiling.js > 0:
        res.js_vs_ceiling = res.js / human.ceiling.js
    if missing:
        res.message = (f"compared over {len(compared)} of {len(human_cells)} cells; no trials for: "
                       f"{', '.join(missing)}")
    for i, (g, s) in enumerate(compared):
        n = sub.n((g, s))
        ci = interval(b_cells[:, i], float(js_cells[0, i]), (0.0, 1.0)) if draws is not None and n >= 2 else None
        res.cells.append(CellResult(
            goal=g, state=s, n_trials=n,
            model=dict(zip(UTTERANCES, map(float, point[(g, s)].mean[0]), strict=True)),
            human=dict(zip(UTTERANCES, map(float, human.cells[(g, s)]), strict=True)),
            js=float(js_cells[0, i]), js_ci=ci,
        ))
    score_findings(res, sub, human, alpha, draws)
    return res


def compare_study2(out: StudyOutputs, human: Study2Human, n_boot: int = DEFAULT_BOOTSTRAP,
                   rng: np.random.Generator | None = None, alpha: float = 0.05) -> list[Study2Result]:
    """One result per source present (exp2, exp1) for this model's study 2 outputs."""
    results = []
    if out.exp2_present:
        trials, problems = exp2_trials(out)
        res = compare_cells(out.model, "exp2", trials, human, alpha, n_boot, rng)
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
        trials, n, unparseable, statuses = exp1_trials(out)
        res = compare_cells(out.model, "exp1", trials, human, alpha, n_boot, rng)
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


def _measures(cells: dict[Cell, Moments], compared: list[Cell], h: np.ndarray, trials: Trials[Cell],
              alpha: float) -> dict[str, np.ndarray]:
    """The ranking measures over the leading (resample) axes: js, r, findings (reproduced count)."""
    _, js, r = distribution_measures(np.stack([cells[c].mean for c in compared], axis=-2), h)
    return {"js": js, "r": r, "findings": reproduced_count(cells, trials, alpha)}


def paired_study2(outs: list[StudyOutputs], pairs: list[tuple[int, int]], human: Study2Human, alpha: float,
                  n_boot: int, rng: np.random.Generator) -> list[Difference]:
    """Per source, for each pair (i, j) of models that both have it: the paired bootstrap difference i - j of JS,
    r and the findings reproduced, on the trials both answered (the same trials resampled for both; replicates
    within trials apart)."""
    human_cells = [c for c in CELLS if c in human.cells]

    def measures(cells: dict[Cell, Moments], trials: Trials[Cell]) -> dict[str, np.ndarray]:
        h = np.stack([human.cells[c] for c in trials.strata])
        return _measures(cells, trials.strata, h, trials, alpha)

    out: list[Difference] = []
    for source in SOURCES:
        have = [i for i, o in enumerate(outs) if _present(o, source)]
        mine = [(have.index(i), have.index(j)) for i, j in pairs if i in have and j in have]
        if mine:
            models = [(outs[i].model, _trials(outs[i], source).restrict(human_cells)) for i in have]
            out += paired_differences("study2", source, models, mine, ("js", "r", "findings"), measures,
                                      lambda t: no_interval(thin(t), len(t.strata)), n_boot, rng)
    return out


def _signed(x: float | None) -> str:
    return MISSING if x is None else ("+" if x >= 0 else "") + sig(x)


def _reproduced(f: FindingResult) -> str:
    if not f.testable:
        return "not testable"
    return "**yes**" if f.reproduced else "no"


def findings_lines(r2: Study2Result) -> list[str]:
    """The findings of one result as a list (a table of them, with the findings' long labels and the humans'
    figures, would be wider than the UI's pane, and one of Prefect's two UIs never wraps a cell): per finding the
    verdict, the humans' figures, the model's, and the test; notes numbered under it."""
    head = (f"Findings reproduced: {r2.reproduced} of {r2.findings_total} "
            f"{shown(r2.reproduced_ci, note=r2.findings_no_interval, fmt='.0f')}".rstrip() + ".")
    items: list[str] = []
    notes: list[str] = []
    for f in r2.findings:
        human = (f"{sig(f.human_first)} vs {sig(f.human_second)}: {_signed(f.human_effect)} "
                 f"{shown(f.human_ci, note=f.human_source if f.human_ci is None else '')}".rstrip()
                 if f.human_effect is not None else MISSING)
        model = (f"{sig(f.model_first)} vs {sig(f.model_second)}: " if f.model_first is not None else "") + \
            (f"{_signed(f.effect)} {shown(f.effect_ci, note='' if f.testable else 'no interval')}".rstrip()
             if f.effect is not None else MISSING)
        test = f"; t = {sig(f.statistic)}, p = {sig(f.p_value)}" if f.testable else ""
        if f.note:
            notes.append(f"{len(notes) + 1}. {f.label}: {f.note}")
        items.append(f"- **{md_escape(f.label)}** (n {f.n_trials}): {_reproduced(f)}; humans {human}; model "
                     f"{model}{test}" + (f" [{len(notes)}]" if f.note else ""))
    if not items:
        return [head, "", "_No finding could be tested._"]
    return [head, "", "Each finding: the two shares compared (first vs second), their difference [95% CI]; reproduced "
            f"when the model's difference is significantly larger than {MIN_EFFECT:g} (the smallest effect of "
            "interest).", "",
            *items, *(["", *notes] if notes else [])]


def markdown(r2: Study2Result) -> list[str]:
    """One result's section of compare.md: the findings, then per goal x state cell its divergence and the top
    choices."""
    worded = "" if r2.prompt_variant == "main" else f", prompt {r2.prompt_variant}"
    out = [f"## Study 2: {r2.model} ({r2.source}{worded})", ""]
    if r2.source == "exp1":
        share = MISSING if r2.unparseable_share is None else f"{100 * r2.unparseable_share:.1f}"
        out.append(f"{r2.n_responses} responses, {r2.unparseable} unparseable ({share}%); "
                   f"statuses: {counts(r2.status_counts)}.")
    if r2.message or r2.r_note:
        out.append(f"Note: {'; '.join(filter(None, [r2.message, r2.r_note]))}")
    if r2.status == "ok":
        ceiling = f" ({sig(r2.js_vs_ceiling)} x the humans' split-half JS)" if r2.js_vs_ceiling is not None else ""
        out += [f"JS {sig(r2.js)} {shown(r2.js_ci, note=r2.no_interval)}{ceiling}; r {sig(r2.r)} "
                f"{shown(r2.r_ci, note=r2.no_interval if r2.r is not None else '')}".rstrip() + ".", "",
                *findings_lines(r2)]
    cells = []
    for c in r2.cells:
        top_m = max(c.model, key=lambda u: c.model[u])
        top_h = max(c.human, key=lambda u: c.human[u])
        cells.append([c.goal, c.state, str(c.n_trials), f"{sig(c.js)} {shown(c.js_ci, c.n_trials)}".rstrip(),
                      f"{top_m} ({c.model[top_m]:.2f})", f"{top_h} ({c.human[top_h]:.2f})"])
    return [*out, "", *md_table(["goal", "state", "n", "JS [95% CI]", "top model choice", "top human choice"],
                                cells, empty=f"No goal x state cell to compare: {r2.message or 'no usable trials'}."),
            ""]


def references(human: Study2Human) -> list[Reference]:
    """The humans' split-half noise ceiling, shown beside the models' JS and r."""
    c = human.ceiling
    if c is None:
        return []
    how = (f"{c.splits:,} random halves of {c.participants} participants"
           if c.splits and c.participants else "random halves of the participants")
    where = "published figures" if c.published else f"computed from {Path(c.source).name}"
    floor = f"; sampling floor JS {sig(c.floor_js)} {shown(c.floor_js_ci)}" if c.floor_js is not None else ""
    return [Reference(study="study2", label="humans: split-half noise ceiling", js=c.js, js_ci=c.js_ci, r=c.r,
                      r_ci=c.r_ci, note=f"{how}, r Spearman-Brown corrected ({where}){floor}")]


class Study2Comparison(Comparison):
    """Per goal x state cell the model's distribution over the 8 utterances against the humans'; the paper's
    findings tested on the model."""

    order = 0  # the ranking leads with study 2's divergence
    measures = ("js", "r", "findings")
    primary = "js"
    legend = ("JS divergence: Jensen-Shannon (bits, 0 = identical) per goal x state cell, mean over cells; "
              "x ceiling: JS as a multiple of the humans' split-half JS. r: Pearson over the cell x utterance "
              "proportions. Findings (study 2): the paper's 8 findings reproduced (one-sided tests across trials that "
              f"each effect exceeds {MIN_EFFECT:g}, the smallest of interest).")
    kinds = human_data.KINDS
    formats = human_data.FORMATS

    def default_files(self, folder: Path) -> list[Path]:
        return human_data.default_files(folder)

    def read_human(self, kind: str, table: Table, current: Any) -> Study2Human:
        return human_data.read(kind, table, current)

    def refuse_header(self, table: Table) -> None:
        human_data.refuse_header(table)

    def sources(self, human: Study2Human) -> dict[str, str]:
        out = {"study2": human.source}
        if human.published:
            out["study2 published findings"] = human.published_source
        if human.ceiling is not None:
            out["study2 noise ceiling"] = human.ceiling.source
        return out

    def compare(self, out: StudyOutputs, human: Study2Human, alpha: float, n_boot: int,
                rng: np.random.Generator) -> list[Study2Result]:
        return compare_study2(out, human, n_boot, rng, alpha)

    def paired(self, outs: list[StudyOutputs], pairs: list[tuple[int, int]], human: Study2Human, alpha: float,
               n_boot: int, rng: np.random.Generator) -> list[Difference]:
        return paired_study2(outs, pairs, human, alpha, n_boot, rng)

    def references(self, human: Study2Human) -> list[Reference]:
        return references(human)

    def notes(self, human: Study2Human) -> list[str]:
        return [human.ceiling_note] if human.ceiling is None and human.ceiling_note else []

    def rank(self, results: list[Study2Result], variant_of: Callable[[str], str | None]) -> list[RankedRow]:
        """Per source (exp2, then exp1), by JS divergence, lowest (most human-like) first."""
        s2 = sorted(results, key=lambda r: (SOURCES.index(r.source) if r.source in SOURCES else len(SOURCES),
                                             r.status != "ok", r.js if r.js is not None else np.inf, r.model))
        return [RankedRow(rank=i, model=r.model, variant_of=variant_of(r.model), study="study2", source=r.source,
                          status=r.status, js=r.js, js_ci=r.js_ci, r=r.r, r_ci=r.r_ci,
                          findings=f"{r.reproduced}/{r.findings_total}" if r.status == "ok" else "",
                          findings_ci=r.reproduced_ci, unparseable_share=r.unparseable_share,
                          message=r.message or r.r_note, js_vs_ceiling=r.js_vs_ceiling,
                          no_interval=r.no_interval, findings_no_interval=r.findings_no_interval)
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
