"""Study 1 (knowledge and implicature): posterior bets by (access, observe), the published findings as a
scorecard, and knowledgeability by access against the human figures.

Bets are out of 100. Exp 2: the "posterior" option probabilities x 100 and P("yes") x 100 on "knowledge".
Exp 1: the extracted `probabilities` x 100 and the yes-rate of the extracted `knowledge` answers (averaged
over a trial's replicates). A finding is reproduced when the model's one-sided paired test across trials
(bets on state_a exceed bets on state_b by more than MIN_EFFECT, a minimum-effect test) is significant exactly
where the humans' was: a difference smaller than the smallest effect of interest counts as no difference, however
many trials make it significant.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from grace.compare.differences import paired_differences
from grace.compare.human import Table
from grace.compare.metrics import DEFAULT_BOOTSTRAP, interval, one_sample_greater, paired_greater
from grace.compare.outputs import StudyOutputs
from grace.compare.plugin import Comparison
from grace.compare.resample import Moments, Trials, draw, mean_var, no_interval, shown, thin
from grace.compare.schema import Difference, RankedRow
from grace.studies.study1 import human as human_data
from grace.studies.study1.human import Finding, Study1Human
from grace.studies.study1.results import ConditionPosterior, FindingResult, KnowledgeResult, Study1Result
from grace.studies.study1.study import STATES
from grace.ui_format import counts, md_escape, md_table, sig

# The smallest effect of interest: 5 of the 100 points a listener splits over the four states. A choice, not a
# published figure (the published findings say only which differences were significant); recorded with every
# finding (`min_effect`) and used by analysis/grace.R alike.
MIN_EFFECT = 5.0

Condition = tuple[int, int]  # (access, observe)
SOURCES = ("exp2", "exp1")


@dataclass
class Bets:
    """Per trial (and replicate, Exp 1): posterior bets over 0-3 by condition, knowledge bets by access (of 100)."""

    posterior: Trials[Condition] = field(default_factory=Trials)  # stratum (access, observe); values (R, 4)
    knowledge: Trials[int] = field(default_factory=Trials)  # stratum access; values (R, 1)
    n_responses: int = 0
    unparseable: int = 0
    knowledge_unparseable: int = 0
    statuses: Counter[str] = field(default_factory=Counter)


def _condition(out: StudyOutputs, trial_id: str) -> Condition | None:
    c = out.conditions.get(trial_id)
    return (int(c["access"]), int(c["observe"])) if c else None


def exp2_bets(out: StudyOutputs) -> Bets:
    return out.once("study1-exp2", lambda: _exp2_bets(out))


def exp1_bets(out: StudyOutputs) -> Bets:
    """Each usable replicate a row of its trial (the bootstrap resamples replicates within trials)."""
    return out.once("study1-exp1", lambda: _exp1_bets(out))


def _exp2_bets(out: StudyOutputs) -> Bets:
    bets = Bets(n_responses=len(out.exp2), statuses=Counter({"ok": len(out.exp2), **out.exp2_not_ok}))
    post: list[tuple[Condition, str, np.ndarray]] = []
    know: list[tuple[int, str, np.ndarray]] = []
    for rec in out.exp2:
        cond = _condition(out, rec.trial_id)
        if cond is None:
            continue
        q = rec.questions.get("posterior")
        p = np.array([q.probs.get(s, 0.0) for s in STATES], dtype=float) if q is not None else None
        if p is not None and p.sum() > 0 and np.isfinite(p).all():
            post.append((cond, rec.trial_id, 100 * p / p.sum()))
        else:
            bets.unparseable += 1
        k = rec.questions.get("knowledge")
        if k is not None and sum(k.probs.values()) > 0:
            know.append((cond[0], rec.trial_id, np.array([100 * k.probs.get("yes", 0.0) / sum(k.probs.values())])))
        else:
            bets.knowledge_unparseable += 1
    bets.posterior, bets.knowledge = Trials[Condition].collect(post), Trials[int].collect(know)
    return bets


def _probabilities(value: object) -> np.ndarray | None:
    if not isinstance(value, dict):
        return None
    try:
        p = np.array([float(value.get(s, 0.0)) for s in STATES])
    except (TypeError, ValueError):
        return None
    if not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
        return None
    return 100 * p / p.sum()


def _exp1_bets(out: StudyOutputs) -> Bets:
    bets = Bets()
    post: list[tuple[Condition, str, np.ndarray]] = []
    know: list[tuple[int, str, np.ndarray]] = []
    for row in out.extracted:
        tid = row["trial_id"]
        cond = _condition(out, tid)
        if cond is None:
            continue
        bets.n_responses += 1
        bets.statuses[row["status"]] += 1
        usable = row["status"] in {"ok", "partial"}
        p = _probabilities(row.get("probabilities")) if usable else None
        if p is None:
            bets.unparseable += 1
        else:
            post.append((cond, tid, p))
        k = row.get("knowledge") if usable else None
        if k in {"yes", "no"}:
            know.append((cond[0], tid, np.array([100.0 if k == "yes" else 0.0])))
        else:
            bets.knowledge_unparseable += 1
    bets.posterior, bets.knowledge = Trials[Condition].collect(post), Trials[int].collect(know)
    return bets


def _finding_trials(f: Finding, posterior: Trials[Condition]) -> int:
    return posterior.n((f.access, f.observe))


def _contrast(f: Finding) -> np.ndarray:
    c = np.zeros(len(STATES))
    c[f.state_a], c[f.state_b] = 1.0, -1.0
    return c


def _significant(f: Finding, cond: Moments, alpha: float) -> np.ndarray:
    """The finding's one-sided paired t-test (bets on state_a > on state_b) over the leading (resample) axes."""
    return one_sample_greater(*mean_var([cond], _contrast(f)), alpha, MIN_EFFECT).significant


def reproduced_count(draws: dict[Condition, Moments], findings: list[Finding], posterior: Trials[Condition],
                     alpha: float) -> np.ndarray:
    """(...,) findings reproduced over the leading (resample) axes of the conditions' moments; a finding whose
    condition has fewer than 2 trials counts as not reproduced."""
    k = np.zeros(next(iter(draws.values())).s1.shape[:-1]) if draws else np.zeros(())
    for f in findings:
        if _finding_trials(f, posterior) >= 2:
            k = k + (_significant(f, draws[(f.access, f.observe)], alpha) == f.humans)
    return k


def score_findings(bets: Bets, findings: list[Finding], alpha: float, draws: dict[Condition, Moments] | None
                   ) -> tuple[list[FindingResult], tuple[float, float] | None, str]:
    """Each finding tested on the model's trials; the bootstrap interval of the count reproduced (resampling
    trials within conditions, the tests redone), or why it is withheld."""
    results = []
    means = bets.posterior.means()
    for f in findings:
        arr = means.get((f.access, f.observe), np.zeros((0, len(STATES))))
        a, b = arr[:, f.state_a], arr[:, f.state_b]
        test = paired_greater(a, b, alpha, MIN_EFFECT)
        share = None
        if draws is not None and len(arr) >= 2:
            share = float((_significant(f, draws[(f.access, f.observe)], alpha) == f.humans).mean())
        results.append(FindingResult(
            label=f.label, observe=f.observe, access=f.access, state_a=f.state_a, state_b=f.state_b,
            humans=f.humans, n_trials=len(arr), min_effect=MIN_EFFECT,
            mean_a=float(a.mean()) if len(arr) else None, mean_b=float(b.mean()) if len(arr) else None,
            mean_diff=test.mean_diff if len(arr) else None, statistic=test.statistic, p_value=test.p_value,
            model_significant=test.significant, reproduced=test.p_value is not None and test.significant == f.humans,
            reproduced_boot_share=share,
            note="; ".join(filter(None, [f.note and f"humans: {f.note}", test.note])),
        ))
    untestable = [r for r in results if r.p_value is None]
    if not findings or draws is None:
        return results, None, ""
    if untestable:
        return results, None, f"{len(untestable)} not testable: n<2, no interval"
    return results, interval(reproduced_count(draws, findings, bets.posterior, alpha)), ""


def knowledge_results(bets: Bets, human: Study1Human, n_boot: int,
                      rng: np.random.Generator) -> tuple[list[KnowledgeResult], bool | None]:
    out = []
    means = bets.knowledge.means()
    draws = draw(bets.knowledge, n_boot, rng) if n_boot else {}
    for access in sorted(set(bets.knowledge.strata) | set(human.knowledgeability)):
        vals = means.get(access, np.zeros((0, 1)))[:, 0]
        hm, hsd = human.knowledgeability.get(access, (None, None))
        mean = float(vals.mean()) if vals.size else None
        ci = interval(draws[access].mean[..., 0]) if vals.size >= 2 and access in draws else None
        out.append(KnowledgeResult(access=access, n_trials=int(vals.size), model_mean=mean, model_ci=ci,
                                   human_mean=hm, human_sd=hsd,
                                   difference=None if mean is None or hm is None else mean - hm))
    both = [(k.access, k.model_mean, k.human_mean) for k in out
            if k.model_mean is not None and k.human_mean is not None]
    if len(both) < 2:
        return out, None
    order_model = [access for access, _, _ in sorted(both, key=lambda b: b[1])]
    order_human = [access for access, _, _ in sorted(both, key=lambda b: b[2])]
    return out, order_model == order_human


def compare_bets(model: str, source: str, bets: Bets, human: Study1Human, alpha: float = 0.05,
                 n_boot: int = DEFAULT_BOOTSTRAP, rng: np.random.Generator | None = None) -> Study1Result:
    rng = rng or np.random.default_rng()
    post = bets.posterior
    res = Study1Result(model=model, source=source, status="ok", n_responses=bets.n_responses,
                       unparseable=bets.unparseable, knowledge_unparseable=bets.knowledge_unparseable,
                       status_counts=dict(bets.statuses), findings_total=len(human.findings),
                       n_trials=sum(post.n(c) for c in post.strata))
    if source == "exp1":
        res.unparseable_share = bets.unparseable / bets.n_responses if bets.n_responses else None
    if not post.strata:
        if bets.n_responses and bets.unparseable == bets.n_responses:
            res.status = "all-unparseable"
            res.message = (f"all {bets.n_responses} responses lack usable posterior probabilities "
                           f"(statuses: {dict(bets.statuses)}): no finding can be tested")
        else:
            res.status = "no-data"
            res.message = "no trials with posterior bets in any (access, observe) condition"
    draws = draw(post, n_boot, rng) if n_boot and post.strata else None
    means = post.means()
    for access, observe in sorted(post.strata):
        arr = means[(access, observe)]
        boot = draws[(access, observe)].mean if draws is not None and len(arr) >= 2 else None
        res.conditions.append(ConditionPosterior(
            access=access, observe=observe, n_trials=len(arr),
            mean={s: float(v) for s, v in zip(STATES, arr.mean(axis=0), strict=True)},
            ci={s: interval(boot[:, i]) if boot is not None else None for i, s in enumerate(STATES)},
        ))
    res.findings, res.reproduced_ci, res.findings_no_interval = score_findings(bets, human.findings, alpha, draws)
    res.reproduced = sum(f.reproduced for f in res.findings)
    untestable = [f for f in res.findings if f.p_value is None]
    if untestable and res.status == "ok":
        res.message = (f"{len(untestable)} finding(s) not testable (fewer than 2 trials in the condition), "
                       "counted as not reproduced")
    res.knowledge, res.knowledge_order_matches = knowledge_results(bets, human, n_boot, rng)
    return res


def compare_study1(out: StudyOutputs, human: Study1Human, alpha: float = 0.05, n_boot: int = DEFAULT_BOOTSTRAP,
                   rng: np.random.Generator | None = None) -> list[Study1Result]:
    results = []
    if out.exp2_present:
        results.append(compare_bets(out.model, "exp2", exp2_bets(out), human, alpha, n_boot, rng))
    if out.exp1_present:
        results.append(compare_bets(out.model, "exp1", exp1_bets(out), human, alpha, n_boot, rng))
    return results


def paired_study1(outs: list[StudyOutputs], pairs: list[tuple[int, int]], human: Study1Human, alpha: float,
                  n_boot: int, rng: np.random.Generator) -> list[Difference]:
    """Per source, for each pair (i, j) of models that both have it: the paired bootstrap difference i - j of the
    findings reproduced, on the trials both answered (the same trials resampled for both)."""
    conds = sorted({(f.access, f.observe) for f in human.findings})

    def measures(draws: dict[Condition, Moments], trials: Trials[Condition]) -> dict[str, np.ndarray]:
        return {"findings": reproduced_count(draws, human.findings, trials, alpha)}

    out: list[Difference] = []
    for source in SOURCES:
        have = [i for i, o in enumerate(outs) if (o.exp2_present if source == "exp2" else o.exp1_present)]
        mine = [(have.index(i), have.index(j)) for i, j in pairs if i in have and j in have]
        if mine:
            models = [(outs[i].model, (exp2_bets if source == "exp2" else exp1_bets)(outs[i]).posterior.restrict(conds))
                      for i in have]
            out += paired_differences("study1", source, models, mine, ("findings",), measures,
                                      lambda t: no_interval(thin(t, conds), len(conds), "conditions"), n_boot, rng)
    return out


def _fmt(x: float, fmt: str) -> str:
    """`x` in `fmt` (bets: one decimal), but never more than 3 significant digits: 100.0 -> "100"."""
    text = f"{x:{fmt}}"
    if len(text.lstrip("+-").replace(".", "").lstrip("0")) <= 3:
        return text
    return ("+" if "+" in fmt and x > 0 else "") + sig(x)


def _ci(ci: tuple[float, float] | None, fmt: str, n: int | None = None, note: str = "") -> str:
    """An interval in `fmt`; withheld, why (`note`, or "n=1, no interval" for fewer than 2 trials)."""
    return f"[{_fmt(ci[0], fmt)}, {_fmt(ci[1], fmt)}]" if ci else shown(None, n, note)


def _num(x: float | None, fmt: str) -> str:
    return sig(x) if x is None else _fmt(x, fmt)


def _reproduced(f: FindingResult) -> str:
    if f.reproduced:
        return "**yes**"
    return "not testable" if f.p_value is None else "no"


def markdown(r1: Study1Result) -> list[str]:
    """One result's section of compare.md: the scorecard, the mean bets, knowledgeability."""
    worded = "" if r1.prompt_variant == "main" else f", prompt {r1.prompt_variant}"
    out = [f"## Study 1: {r1.model} ({r1.source}{worded})", "",
           f"{r1.reproduced} of {r1.findings_total} findings reproduced "
           f"{_ci(r1.reproduced_ci, '.0f', note=r1.findings_no_interval)}; "
           f"{r1.n_trials} trials with posterior bets; {r1.unparseable} of {r1.n_responses} without usable "
           f"posterior; statuses: {counts(r1.status_counts)}."]
    if r1.message:
        out.append(f"Note: {r1.message}")
    # the notes under the table, numbered: one of Prefect's two UIs never wraps a table cell
    notes = [f"{f.label}: {f.note}" for f in r1.findings if f.note]
    out += ["", f"Per finding: the model's mean bets a, b; its one-sided paired t-test that a exceeds b by more than "
            f"{MIN_EFFECT:g} points, the smallest effect of interest (t, p); significant (sig.) for the humans (h) and "
            "the model (m); a note's number after the verdict.", "", *md_table(
        ["finding", "n", "means a, b", "t", "p", "sig. h, m", "reproduced"],
        [[f.label, str(f.n_trials), f"{_num(f.mean_a, '.1f')}, {_num(f.mean_b, '.1f')}", sig(f.statistic),
          sig(f.p_value), f"{'yes' if f.humans else 'no'}, {'yes' if f.model_significant else 'no'}",
          _reproduced(f) + (f" [{notes.index(f'{f.label}: {f.note}') + 1}]" if f.note else "")]
         for f in r1.findings],
        empty="No published finding loaded.")]
    out += ["", *[f"{i}. {md_escape(n)}" for i, n in enumerate(notes, start=1)]] if notes else []
    out += ["", *md_table(
        ["access", "observe", "n", "mean bets 0/1/2/3", "95% CI 0 / 1 / 2 / 3"],
        [[str(c.access), str(c.observe), str(c.n_trials), " / ".join(_fmt(c.mean[s], ".1f") for s in STATES),
          " / ".join(_ci(c.ci.get(s), ".1f") for s in STATES) if c.n_trials >= 2 else shown(None, c.n_trials)]
         for c in r1.conditions],
        empty=f"No mean bets: {r1.message or 'no trial with usable posterior bets'}.")]
    order = {True: "yes", False: "no", None: "—"}[r1.knowledge_order_matches]
    out += ["", f"Knowledgeability (bet the speaker knows, of 100); ordering by access as humans: {order}", "",
            "| access | n | model [95% CI] | humans (SD) | difference |", "|---|---|---|---|---|"]
    out += [f"| {k.access} | {k.n_trials} | {_num(k.model_mean, '.1f')} "
            f"{_ci(k.model_ci, '.1f', k.n_trials if k.n_trials else None)} | "
            f"{_num(k.human_mean, '.1f')} ({_num(k.human_sd, '.1f')}) | {_num(k.difference, '+.1f')} |"
            for k in r1.knowledge]
    out.append("")
    return out


class Study1Comparison(Comparison):
    """The published findings as a scorecard (reproduced or not) and knowledgeability by access."""

    order = 1
    measures = ("findings",)
    primary = "findings"
    legend = ("Findings: published pairwise comparisons of study 1 reproduced (one-sided paired t-test across "
              f"trials that bets differ by more than {MIN_EFFECT:g} points, significant exactly where the humans' "
              "was).")
    kinds = human_data.KINDS
    formats = human_data.FORMATS

    def default_files(self, folder: Path) -> list[Path]:
        return human_data.default_files(folder)

    def empty_human(self, folder: Path) -> Study1Human:
        return human_data.empty(folder)

    def read_human(self, kind: str, table: Table, current: Any) -> Study1Human:
        return human_data.read(kind, table, current)

    def sources(self, human: Study1Human) -> dict[str, str]:
        return {"study1 findings": human.source, "study1 knowledgeability": human.knowledge_source}

    def compare(self, out: StudyOutputs, human: Study1Human, alpha: float, n_boot: int,
                rng: np.random.Generator) -> list[Study1Result]:
        return compare_study1(out, human, alpha, n_boot, rng)

    def paired(self, outs: list[StudyOutputs], pairs: list[tuple[int, int]], human: Study1Human, alpha: float,
               n_boot: int, rng: np.random.Generator) -> list[Difference]:
        return paired_study1(outs, pairs, human, alpha, n_boot, rng)

    def rank(self, results: list[Study1Result], variant_of: Callable[[str], str | None]) -> list[RankedRow]:
        """Per source (exp2, then exp1), by findings reproduced, most first."""
        s1 = sorted(results, key=lambda r: (SOURCES.index(r.source) if r.source in SOURCES else len(SOURCES),
                                             r.status != "ok", -r.reproduced, r.model))
        return [RankedRow(rank=i, model=r.model, variant_of=variant_of(r.model), study="study1", source=r.source,
                          status=r.status, findings=f"{r.reproduced}/{r.findings_total}" if r.status == "ok" else "",
                          findings_ci=r.reproduced_ci, unparseable_share=r.unparseable_share, message=r.message,
                          findings_no_interval=r.findings_no_interval)
                for i, r in enumerate(s1, start=1)]

    def markdown(self, results: list[Study1Result]) -> list[str]:
        return [line for r in results for line in markdown(r)]

    def plots(self, results: list[Study1Result], human: Study1Human, out_dir: Path) -> list[Path]:
        if not any(r.status == "ok" for r in results):
            return []
        # plotting is imported when drawn, not when the study is looked up (tests/test_imports.py)
        from grace.studies.study1.plots import plot_study1

        return [plot_study1(results, human, out_dir / "study1.png")]
