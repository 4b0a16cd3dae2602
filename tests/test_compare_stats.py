"""The comparison's statistics (issue 24, items 3-6): study 2's findings, the humans' noise ceiling, paired
differences between models and tied ranks, honest intervals, and the bootstrap's unit (trials within cells,
replicates within trials). On constructed run folders and human files in the authors' form; no server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from grace.cli import main
from grace.compare.human import load_human
from grace.compare.metrics import paired_greater_many, welch_greater_many
from grace.compare.report import compare_run, ranking_rows
from grace.compare.resample import Trials, common, draw, paired_draw
from grace.studies.registry import STUDIES
from grace.studies.study2.ceiling import split_half
from grace.studies.study2.findings import FINDINGS, MIN_EFFECT
from grace.studies.study2.human import CELLS
from grace.studies.study2.study import UTTERANCES
from grace.ui_format import sig
from tests.test_compare import (
    FAIL,
    HUMAN,
    PASS,
    ROOT,
    STUDY2,
    cell_of,
    no_nan,
    study1_rows,
    study2_exp2_rows,
    write_exp2,
    write_extracted,
)

# HUMAN-BASELINES.md: study 2's findings from the authors' data (203 participants, participant bootstrap)
PUBLISHED = {
    "both>informative:negation": (0.739, 0.429, 0.310, (0.241, 0.379)),
    "both>social:negation": (0.739, 0.463, 0.276, (0.204, 0.345)),
    "social>informative:positive": (0.446, 0.032, 0.414, (0.355, 0.475)),
    "social>both:positive": (0.446, 0.116, 0.330, (0.268, 0.392)),
}
# ... and under the informative goal the literal utterance's count of 203 in each state
LITERAL = {"0 hearts": 118, "1 heart": 72, "2 hearts": 172, "3 hearts": 185}
RAW_HEADER = "subid,trial,item,goal,true_state,positivity,utterance"


def raw_line(subject: str, goal: str, state: str, utterance: str) -> str:
    """One choice in the authors' form: "It wasn't good" is positivity neg + utterance good."""
    positivity = "neg" if "wasn't" in utterance else "no_neg"
    return f"{subject},1,poem,{goal},heart{state[0]},{positivity},{utterance.rsplit(' ', 1)[1]}"


def published_counts() -> dict[tuple[str, str], np.ndarray]:
    """Per cell the choice counts behind the shipped proportions: round(proportion x 203)."""
    shipped = pd.read_csv(ROOT / "data" / "human" / "study2_production.csv", comment="#")
    return {(r["goal"], r["state"]): np.rint(r[list(UTTERANCES)].to_numpy(dtype=float) * r["n"]).astype(int)
            for _, r in shipped.iterrows()}


def authors_file(path: Path, seed: int = 0) -> dict[tuple[str, str], np.ndarray]:
    """A speaker-production file in the authors' form with the published counts: 203 participants, each one
    choice in every goal x state cell (which participant made which choice drawn at random)."""
    rng = np.random.default_rng(seed)
    counts = published_counts()
    lines = [RAW_HEADER]
    for (goal, state), c in counts.items():
        choices = np.repeat(np.arange(len(UTTERANCES)), c)
        rng.shuffle(choices)
        lines += [raw_line(f"s{p:03d}", goal, state, UTTERANCES[u]) for p, u in enumerate(choices)]
    path.write_text("\n".join(lines) + "\n")
    return counts


@pytest.fixture(scope="module")
def study2_trials() -> list[dict[str, str]]:
    return STUDY2.load(ROOT / "data" / "study2.csv")


@pytest.fixture(scope="module")
def study1_trials() -> list[dict[str, str]]:
    from tests.test_compare import STUDY1

    return STUDY1.load(ROOT / "data" / "study1.csv")


# --- the bootstrap's unit -------------------------------------------------------------------------------------

def test_trials_gather_replicates_and_pairs_share_trials() -> None:
    rows = [("c", "t1", np.array([1.0, 0.0])), ("c", "t1", np.array([0.0, 1.0])), ("c", "t2", np.array([1.0, 0.0])),
            ("d", "t3", np.array([0.0, 1.0])), ("d", "t1", np.array([5.0, 5.0]))]  # t1 under d: keeps its first cell
    t = Trials.collect(rows)
    assert t.ids == {"c": ["t1", "t2"], "d": ["t3"]}
    assert [v.shape for v in t.values["c"]] == [(2, 2), (1, 2)]
    assert np.allclose(t.means()["c"], [[0.5, 0.5], [1.0, 0.0]])
    other = Trials.collect([("c", "t2", np.array([0.0, 1.0])), ("c", "t9", np.array([1.0, 0.0]))])
    a, b = common(t, other)
    assert a.ids == b.ids == {"c": ["t2"]}


def test_replicates_are_resampled_within_trials() -> None:
    """Identical trials whose replicates disagree still vary (the second stage); one replicate each does not."""
    rng = np.random.default_rng(0)
    split = Trials.collect([("c", f"t{i}", np.array([float(r), 1.0 - r])) for i in range(20) for r in (0, 1)])
    same = Trials.collect([("c", f"t{i}", np.array([0.5, 0.5])) for i in range(20)])
    mean_split = draw(split, 2000, rng)["c"].mean[:, 0]
    mean_same = draw(same, 2000, rng)["c"].mean[:, 0]
    assert np.ptp(mean_same) == 0.0  # nothing varies between trials nor within them
    # each of 20 trials: the mean of 2 draws from {0, 1} -> sd of the mean over trials sqrt(1/8 / 20) = 0.079
    assert mean_split.mean() == pytest.approx(0.5, abs=0.01)
    assert mean_split.std() == pytest.approx(np.sqrt(0.125 / 20), rel=0.1)


def test_paired_draw_resamples_the_same_trials_for_both() -> None:
    rng = np.random.default_rng(1)
    base = rng.random(30)
    a = Trials.collect([("c", f"t{i}", np.array([x])) for i, x in enumerate(base)])
    b = Trials.collect([("c", f"t{i}", np.array([x + 0.1])) for i, x in enumerate(base)])
    da, db = paired_draw(a, b, 500, rng)
    diff = db["c"].mean - da["c"].mean
    assert np.allclose(diff, 0.1)  # paired: the trials' own spread cancels
    unpaired = draw(b, 500, rng)["c"].mean - draw(a, 500, rng)["c"].mean
    assert unpaired.std() > 0.05


def test_batched_tests_are_scipys() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(0.5, 0.2, (3, 40)), rng.normal(0.4, 0.3, (3, 55))
    w = welch_greater_many(a, b)
    for i in range(3):
        ref = stats.ttest_ind(a[i], b[i], equal_var=False, alternative="greater")
        assert (w.statistic[i], w.p_value[i]) == pytest.approx((ref.statistic, ref.pvalue))
    d = rng.normal(0.1, 1.0, (3, 25))
    p = paired_greater_many(d)
    for i in range(3):
        ref = stats.ttest_1samp(d[i], 0.0, alternative="greater")
        assert (p.statistic[i], p.p_value[i]) == pytest.approx((ref.statistic, ref.pvalue))
    flat = welch_greater_many(np.full((1, 5), 0.7), np.full((1, 5), 0.2))
    assert flat.significant[0] and flat.p_value[0] == 0.0 and np.isnan(flat.statistic[0])


# --- study 2's findings -----------------------------------------------------------------------------------------

def test_shipped_findings_and_ceiling() -> None:
    h = HUMAN.study2
    assert h.ceiling is not None and h.ceiling.published
    assert (h.ceiling.js, h.ceiling.js_ci, h.ceiling.r, h.ceiling.r_ci) == (0.0233, (0.0174, 0.0307), 0.9937,
                                                                             (0.9899, 0.9963))
    assert h.ceiling.floor_js == 0.0056 and h.ceiling.participants == 203 and h.ceiling.splits == 1000
    for key, (first, second, diff, ci) in PUBLISHED.items():
        f = h.finding(key)  # the shares computed from the shipped table, the interval published
        assert (f.first, f.second, f.difference) == pytest.approx((first, second, diff), abs=0.002)
        assert f.ci == ci and f.source == "published"
    for state, k in LITERAL.items():
        f = h.finding(f"informative:{state}:literal")
        assert f.first == pytest.approx(k / 203, abs=0.002) and f.difference > 0 and f.ci is None


def _own_trials_table(folder: Path, counts: dict[tuple[str, str], np.ndarray]) -> list[dict]:
    """Exp 1 as if 203 trials per cell each gave one human choice: the trials of a CSV of one's own (conditions
    from the stage table), one extracted reply per trial."""
    goals = {"informative": "to give accurate and informative feedback", "social": "to make the listener feel good",
             "both": "to BOTH make the listener feel good AND give accurate and informative feedback"}
    table, replies = [], []
    for (goal, state), c in counts.items():
        for i, u in enumerate(np.repeat(np.arange(len(UTTERANCES)), c)):
            tid = f"human-{goal}-{state[0]}-{i}"
            table.append({"trial_id": tid, "Goal": goals[goal], "State": state, "Precontext": "p", "Scenario": "s",
                          "SP_Name": "Ann", "LS_Name": "Bob"})
            replies.append({"trial_id": tid, "utterance": UTTERANCES[u]})
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(table).to_parquet(folder / "exp1.parquet")
    return replies


def test_human_figures_as_a_model_reproduce_every_finding_with_js_0(tmp_path: Path, cfg, study2_trials) -> None:
    """The humans' own data fed in as a "model": Exp 2 gives each trial its cell's human distribution, Exp 1 has
    one trial per human choice. Every finding is reproduced, JS is 0, r is 1, and the effects are the published."""
    raw = tmp_path / "speaker_production.csv"
    counts = authors_file(raw)
    human = {c: n / n.sum() for c, n in counts.items()}
    run = tmp_path / "run"
    write_exp2(run / "humans" / "study2", "humans", "study2", study2_exp2_rows(study2_trials,
                                                                               lambda t: human[cell_of(t)]))
    write_extracted(run / "humans" / "study2", "humans", _own_trials_table(run / "humans" / "study2", counts))
    assert main(["compare", str(run), "--human", str(raw), "--bootstrap", "400", "--no-plots"]) == 0
    rep = no_nan(run / "compare" / "compare.json")
    exp2, exp1 = rep["study2"]
    for res in (exp2, exp1):
        assert res["status"] == "ok" and res["cells_compared"] == 12
        assert res["js"] == pytest.approx(0.0, abs=1e-12) and res["r"] == pytest.approx(1.0)
        assert res["reproduced"] == 8 == res["findings_total"] and all(f["reproduced"] for f in res["findings"])
        for f in res["findings"]:
            assert f["model_first"] == pytest.approx(f["human_first"]) and f["effect"] == pytest.approx(
                f["human_effect"])
            if f["key"] in PUBLISHED:
                first, second, diff, _ = PUBLISHED[f["key"]]
                assert (f["model_first"], f["model_second"], f["effect"]) == pytest.approx((first, second, diff),
                                                                                           abs=0.002)
    assert exp1["n_trials"] == 2436 and exp2["n_trials"] == 2424
    # Exp 1's trials are the humans' choices: resampling them gives about the published participant intervals
    for f in exp1["findings"]:
        if f["key"] in PUBLISHED:
            assert f["effect_ci"] == pytest.approx(PUBLISHED[f["key"]][3], abs=0.015), f["key"]
            assert f["human_ci"] == pytest.approx(PUBLISHED[f["key"]][3], abs=0.015), f["key"]
            assert f["human_source"] == "2,000 bootstrap resamples of the 203 participants"
    # Exp 2's trials within a cell are identical: no spread within a cell, decided by the sign, and said so
    assert all("no variance" in f["note"] for f in exp2["findings"] if f["key"].endswith(":literal"))
    ranking = {r["source"]: r for r in rep["ranking"]}
    assert ranking["exp2"]["findings"] == ranking["exp1"]["findings"] == "8/8"
    md = (run / "compare" / "compare.md").read_text()
    assert md.count("Findings reproduced: 8 of 8") == 2
    assert "- **both > informative: negation at 0-1 hearts** (n " in md and \
        "): **yes**; humans 0.739 vs 0.429: +0.310 [" in md
    rows = ranking_rows(compare_run(run, STUDIES.values(), [raw], cfg=cfg, n_boot=50, plots=False).ranking,
                        STUDIES.values())
    assert [r["findings [95% CI]"].split(" [")[0] for r in rows if r["study"] == "study2" and r["rank"] != "—"] == \
        ["8/8 findings", "8/8 findings"]


def test_a_model_missing_the_effect_is_not_reproduced(tmp_path: Path, cfg, study2_trials) -> None:
    """Swap the both-goal and informative-goal distributions: both > informative on negation fails, and the
    literal utterance is no longer the informative goal's top choice where 'both' prefers negation."""
    swap = {"both": "informative", "informative": "both", "social": "social"}
    write_exp2(tmp_path / "run" / "m" / "study2", "m", "study2", study2_exp2_rows(
        study2_trials, lambda t: HUMAN.study2.cells[(swap[cell_of(t)[0]], cell_of(t)[1])]))
    (res,) = compare_run(tmp_path / "run", STUDIES.values(), cfg=cfg, n_boot=100, plots=False).study2
    by = {f.key: f for f in res.findings}
    assert not by["both>informative:negation"].reproduced and by["both>informative:negation"].effect < 0
    assert not by["informative:0 hearts:literal"].reproduced  # 'both' at 0 hearts: "It wasn't terrible" leads
    assert by["social>informative:positive"].reproduced
    assert res.reproduced == sum(f.reproduced for f in res.findings) < 8


def test_a_difference_below_the_smallest_effect_of_interest_is_not_reproduced(tmp_path: Path, cfg,
                                                                               study2_trials) -> None:
    """Every trial alike but for a little noise (as a random-weight model answers): the both goal's negation share
    ahead of the informative goal's by 0.01 is significant over the full study's trials, yet not reproduced; by
    0.1 it is."""
    rng = np.random.default_rng(5)
    neg = np.array([u.startswith("It wasn't") for u in UTTERANCES])

    def model(shift: float) -> dict[str, np.ndarray]:
        out = {}
        for t in study2_trials:
            p = np.full(8, 1 / 8) + rng.normal(0, 1e-4, 8)
            if cell_of(t)[0] == "both":
                p = p + np.where(neg, shift / 4, -shift / 4)
            out[t["trial_id"]] = p / p.sum()
        return out

    key = "both>informative:negation"
    found = {}
    for shift in (0.01, 0.1):
        dists = model(shift)
        run = tmp_path / f"run{shift}"
        rows = study2_exp2_rows(study2_trials, lambda t, d=dists: d[t["trial_id"]])
        write_exp2(run / "m" / "study2", "m", "study2", rows)
        (res,) = compare_run(run, STUDIES.values(), cfg=cfg, n_boot=50, plots=False).study2
        found[shift] = next(f for f in res.findings if f.key == key)
        a = np.array([dists[t["trial_id"]][neg].sum() for t in study2_trials
                      if cell_of(t) in {("both", s) for s in ("0 hearts", "1 heart")}])
        b = np.array([dists[t["trial_id"]][neg].sum() for t in study2_trials
                      if cell_of(t) in {("informative", s) for s in ("0 hearts", "1 heart")}])
        assert stats.ttest_ind(a, b, equal_var=False, alternative="greater").pvalue < 1e-6  # significant above 0
    small, large = found[0.01], found[0.1]
    assert small.effect == pytest.approx(0.01, abs=1e-3) and small.testable and not small.reproduced, small
    assert small.p_value is not None and small.p_value > 0.5 and small.effect_ci[1] < MIN_EFFECT
    assert large.effect == pytest.approx(0.1, abs=1e-3) and large.reproduced and large.p_value < 1e-6, large


def test_findings_statistics_are_scipys(tmp_path: Path, cfg, study2_trials) -> None:
    rng = np.random.default_rng(8)
    dists = {t["trial_id"]: rng.dirichlet(1 + 20 * HUMAN.study2.cells[cell_of(t)]) for t in study2_trials}
    write_exp2(tmp_path / "run" / "m" / "study2", "m", "study2",
               study2_exp2_rows(study2_trials, lambda t: dists[t["trial_id"]]))
    (res,) = compare_run(tmp_path / "run", STUDIES.values(), cfg=cfg, n_boot=100, plots=False).study2
    by_cell: dict[tuple[str, str], list[np.ndarray]] = {}
    for t in study2_trials:
        by_cell.setdefault(cell_of(t), []).append(dists[t["trial_id"]])
    for f, r in zip(FINDINGS, res.findings, strict=True):
        if f.kind == "more":
            a = np.concatenate([np.stack(by_cell[c])[:, f.columns].sum(axis=1) for c in f.first_cells])
            b = np.concatenate([np.stack(by_cell[c])[:, f.columns].sum(axis=1) for c in f.second_cells])
            ref = stats.ttest_ind(a - MIN_EFFECT, b, equal_var=False, alternative="greater")  # H0: a - b <= 0.02
            assert r.effect == pytest.approx(a.mean() - b.mean())
        else:
            cell = np.stack(by_cell[f.first_cells[0]])
            lit = f.columns[0]
            refs = [stats.ttest_rel(cell[:, lit] - MIN_EFFECT, cell[:, j], alternative="greater")
                    for j in range(8) if j != lit]
            ref = max(refs, key=lambda x: x.pvalue)  # the weakest of the seven is the one shown
            assert r.significant == all(x.pvalue < 0.05 for x in refs)
        assert (r.statistic, r.p_value) == pytest.approx((ref.statistic, ref.pvalue))
        assert r.effect_ci[0] <= r.effect <= r.effect_ci[1] and r.min_effect == MIN_EFFECT == 0.02


# --- the noise ceiling ------------------------------------------------------------------------------------------

def test_two_identical_halves_give_js_0_and_r_1(tmp_path: Path) -> None:
    """Participants s000-s049 and their copies c000-c049 choose alike: splitting originals from copies gives two
    identical halves (JS 0, r 1); another split does not."""
    rng = np.random.default_rng(3)
    lines = [RAW_HEADER]
    for p in range(50):
        for goal, state in CELLS:
            u = UTTERANCES[rng.choice(8, p=HUMAN.study2.cells[(goal, state)])]
            lines += [raw_line(f"s{p:03d}", goal, state, u), raw_line(f"c{p:03d}", goal, state, u)]
    raw = tmp_path / "twins.csv"
    raw.write_text("\n".join(lines) + "\n")
    h = load_human(STUDIES.values(), [raw]).study2
    parts = h.participants
    assert len(parts.ids) == 100
    originals = np.array([p.startswith("s") for p in parts.ids])
    js, r = split_half(parts, originals[None])
    assert js[0] == pytest.approx(0.0, abs=1e-12) and r[0] == pytest.approx(1.0)
    mixed = np.array([int(p[1:]) < 25 for p in parts.ids])  # twins together: halves of different people
    js2, r2 = split_half(parts, mixed[None])
    assert js2[0] > 0.005 and r2[0] < 1.0
    # independently: pandas counts per half and scipy's Jensen-Shannon distance, squared
    df = pd.read_csv(raw)
    df["u"] = np.where(df.positivity == "neg", "It wasn't ", "It was ") + df.utterance
    half = df.subid.map(dict(zip(parts.ids, mixed, strict=True)))
    tab = [df[half == k].groupby(["goal", "true_state"]).u.value_counts(normalize=True).unstack(fill_value=0)
           .reindex(columns=list(UTTERANCES), fill_value=0) for k in (True, False)]
    expected = np.mean([jensenshannon(tab[0].loc[i], tab[1].loc[i], base=2) ** 2 for i in tab[0].index])
    assert js2[0] == pytest.approx(expected)
    rr = stats.pearsonr(tab[0].to_numpy().ravel(), tab[1].to_numpy().ravel()).statistic
    assert r2[0] == pytest.approx(2 * rr / (1 + rr))


def test_human_raw_file_computes_the_ceiling_beside_js_and_r(tmp_path: Path, cfg, study2_trials, capsys) -> None:
    """`grace compare RUN --human RAW.csv` on a file in the authors' form: the ceiling computed from its 203
    participants comes out near the published one, and sits beside the models' JS and r."""
    raw = tmp_path / "speaker_production.csv"
    authors_file(raw)
    rng = np.random.default_rng(4)
    write_exp2(tmp_path / "run" / "m" / "study2", "m", "study2", study2_exp2_rows(
        study2_trials, lambda t: rng.dirichlet(1 + 30 * HUMAN.study2.cells[cell_of(t)])))
    assert main(["compare", str(tmp_path / "run"), "--human", str(raw), "--bootstrap", "100", "--no-plots"]) == 0
    printed = capsys.readouterr().out
    rep = no_nan(tmp_path / "run" / "compare" / "compare.json")
    (ref,) = rep["references"]
    assert ref["label"] == "humans: split-half noise ceiling" and "computed from speaker_production.csv" in ref["note"]
    assert ref["js"] == pytest.approx(0.0233, abs=0.002) and ref["r"] == pytest.approx(0.9937, abs=0.002)
    assert ref["js_ci"][0] < ref["js"] < ref["js_ci"][1] and ref["r_ci"][0] < ref["r"] < ref["r_ci"][1]
    assert rep["human_sources"]["study2 noise ceiling"] == str(raw)
    (row,) = rep["ranking"]
    assert row["js_vs_ceiling"] == pytest.approx(row["js"] / ref["js"])
    lines = [line for line in printed.splitlines() if line.startswith("| ")]  # study2's Exp 2 table
    assert lines[0].startswith("| rank | model |") and "| x ceiling |" in lines[0]
    assert lines[1].startswith("| 1 | m |") and f"| {sig(row['js_vs_ceiling'])}x |" in lines[1]
    assert lines[2].startswith("| model |") and "| r [95% CI] |" in lines[2]  # r and unread: a table of their own
    ceiling = next(line for line in printed.splitlines() if line.startswith("humans: split-half noise ceiling: JS "))
    assert f"JS {sig(ref['js'])} [" in ceiling and "(1x), r " in ceiling, ceiling
    # the shipped ceiling otherwise; a proportions file of one's own has none, and says why
    assert no_nan(tmp_path / "run" / "compare" / "compare.json")
    table = tmp_path / "mine.csv"
    table.write_text("goal,state,utterance\nsocial,1 heart,It was good\nsocial,1 heart,It was bad\n")
    rep2 = compare_run(tmp_path / "run", STUDIES.values(), [table], cfg=cfg, n_boot=20, plots=False)
    assert rep2.references == [] and rep2.ranking[0].js_vs_ceiling is None
    assert any("no noise ceiling" in n and "mine.csv" in n for n in rep2.notes)


def test_a_raw_file_of_identical_participants_has_a_ceiling_of_0(tmp_path: Path, cfg, study2_trials) -> None:
    raw = tmp_path / "alike.csv"
    lines = [RAW_HEADER] + [raw_line(f"p{p}", g, s, "It was good") for p in range(8) for g, s in CELLS]
    raw.write_text("\n".join(lines) + "\n")
    write_exp2(tmp_path / "run" / "m" / "study2", "m", "study2",
               study2_exp2_rows(study2_trials[:240], lambda t: np.full(8, 1 / 8)))
    rep = compare_run(tmp_path / "run", STUDIES.values(), [raw], cfg=cfg, n_boot=20, plots=False)
    (ref,) = rep.references
    assert ref.js == pytest.approx(0.0, abs=1e-12) and ref.r == pytest.approx(1.0)  # two identical halves
    assert rep.ranking[0].js_vs_ceiling is None  # no multiple of a zero ceiling


# --- paired differences and tied ranks --------------------------------------------------------------------------

def test_paired_differences_separate_what_marginal_intervals_cannot(tmp_path: Path, cfg, study2_trials) -> None:
    """b is a with 3% of each trial's mass spread evenly: per-model intervals overlap, yet on the same trials the
    difference is clear; c is a copy of a (tied); d is far off. Ranks: a and c tied first, then b, then d."""
    rng = np.random.default_rng(6)
    dists = {t["trial_id"]: rng.dirichlet(1 + 3 * HUMAN.study2.cells[cell_of(t)]) for t in study2_trials}
    noisy = {k: 0.97 * v + 0.03 / 8 for k, v in dists.items()}
    far = {k: rng.dirichlet(np.ones(8)) for k in dists}
    run = tmp_path / "run"
    for model, d in (("a", dists), ("b", noisy), ("c", dists), ("d", far)):
        write_exp2(run / model / "study2", model, "study2",
                   study2_exp2_rows(study2_trials, lambda t, d=d: d[t["trial_id"]]))
    rep = compare_run(run, STUDIES.values(), cfg=cfg, n_boot=400, plots=False)
    by = {r.model: r for r in rep.ranking}
    assert by["a"].js_ci[1] > by["b"].js_ci[0], "the marginal intervals overlap"
    diffs = {(d.model, d.other, d.measure): d for d in rep.differences}
    assert len(rep.differences) == 6 * 3  # every pair of 4 models, JS, r and findings
    ab = diffs[("a", "b", "js")]
    assert ab.n_trials == 2424 and ab.difference < 0 and ab.ci[1] < 0 and ab.distinguishable and ab.better == "a"
    ac = diffs[("a", "c", "js")]
    assert ac.difference == 0 and not ac.distinguishable and ac.better is None
    assert [(r.model, r.rank, r.tied_with) for r in rep.ranking] == [
        ("a", 1, ["c"]), ("c", 1, ["a"]), ("b", 3, []), ("d", 4, [])]
    md = (run / "compare" / "compare.md").read_text()
    assert "| 1 (tied) | [a](../trials.html#model=a&study=study2&phase=study&exp2=ok) |" in md and "tied with c" in md
    assert "| study2 | exp2 | a - b | js | 2424 |" in md and "| a better |" in md
    rows = ranking_rows(rep.ranking, STUDIES.values(), rep.references)
    assert [r["rank"] for r in rows] == ["1 (tied)", "1 (tied)", "3", "4", "—"]


def test_quantized_variant_against_its_base(tmp_path: Path, cfg, study2_trials) -> None:
    rng = np.random.default_rng(7)
    dists = {t["trial_id"]: rng.dirichlet(1 + 5 * HUMAN.study2.cells[cell_of(t)]) for t in study2_trials[:600]}
    run = tmp_path / "run"
    write_exp2(run / "gemma2-27b" / "study2", "gemma2-27b", "study2",
               study2_exp2_rows(study2_trials[:600], lambda t: dists[t["trial_id"]]))
    write_exp2(run / "gemma2-27b-awq" / "study2", "gemma2-27b-awq", "study2",  # 120 trials fewer: compared on 480
               study2_exp2_rows(study2_trials[120:600], lambda t: 0.5 * dists[t["trial_id"]] + 0.5 / 8))
    rep = compare_run(run, STUDIES.values(), cfg=cfg, n_boot=200, plots=False)
    (js,) = [d for d in rep.differences if d.measure == "js"]
    assert (js.model, js.other, js.variant_pair, js.n_trials) == ("gemma2-27b-awq", "gemma2-27b", True, 480)
    assert js.difference > 0 and js.distinguishable and js.better == "gemma2-27b"
    md = (run / "compare" / "compare.md").read_text()
    line = next(x for x in md.splitlines() if x.startswith("| gemma2-27b-awq | gemma2-27b |"))
    assert re.search(r"\| js 0\.\d+ \[0\.\d+, 0\.\d+\] \|$", line), line
    assert "| study2 | exp2 | gemma2-27b-awq - gemma2-27b (variant - base) | js |" in md


def test_study1_findings_difference_and_ranks(tmp_path: Path, cfg, study1_trials) -> None:
    run = tmp_path / "run"
    for model, table, seed in (("good", PASS, 0), ("bad", FAIL, 1), ("good2", PASS, 2)):
        write_exp2(run / model / "study1", model, "study1", study1_rows(study1_trials, table, seed=seed))
    rep = compare_run(run, STUDIES.values(), cfg=cfg, n_boot=200, plots=False)
    diffs = {(d.model, d.other): d for d in rep.differences}
    d = diffs[("bad", "good")]
    assert (d.measure, d.model_value, d.other_value, d.difference) == ("findings", 0.0, 8.0, -8.0)
    assert d.distinguishable and d.better == "good" and d.n_trials == 250  # the 5 conditions with findings
    assert not diffs[("good", "good2")].distinguishable
    assert [(r.model, r.rank) for r in rep.ranking] == [("good", 1), ("good2", 1), ("bad", 3)]


# --- honest intervals -------------------------------------------------------------------------------------------

ZERO_WIDTH = re.compile(r"\[([-+]?[\d.]+(?:e-?\d+)?), \1\]")


def test_one_trial_shows_its_value_and_no_interval(tmp_path: Path, cfg, study2_trials, study1_trials) -> None:
    """A cell or condition with one trial: the point value and "n=1, no interval", in the JSON (null), the
    Markdown and the UI rows; never "[x, x]"."""
    rng = np.random.default_rng(5)
    one_per_cell = list({cell_of(t): t for t in study2_trials}.values())
    two = [t for t in study2_trials if cell_of(t) != cell_of(one_per_cell[0])][:60] + one_per_cell[:1]
    run = tmp_path / "run"
    write_exp2(run / "thin" / "study2", "thin", "study2",
               study2_exp2_rows(one_per_cell, lambda t: rng.dirichlet(np.ones(8))))
    write_exp2(run / "mixed" / "study2", "mixed", "study2", study2_exp2_rows(two, lambda t: rng.dirichlet(np.ones(8))))
    one_per_condition = list({(t["access"], t["observe"]): t for t in study1_trials}.values())
    write_exp2(run / "thin" / "study1", "thin", "study1",
               study1_rows(one_per_condition, PASS, know=lambda a: rng.uniform(0.1, 0.9)))
    rep = compare_run(run, STUDIES.values(), cfg=cfg, n_boot=100, plots=False)
    thin2 = next(r for r in rep.study2 if r.model == "thin")
    assert thin2.js is not None and thin2.js_ci is None and thin2.r_ci is None
    assert thin2.no_interval == "n=1 in 12 of 12 cells, no interval"
    assert all(c.n_trials == 1 and c.js_ci is None for c in thin2.cells)
    assert thin2.reproduced_ci is None and "not testable" in thin2.findings_no_interval
    assert all(not f.testable and f.effect_ci is None for f in thin2.findings)
    mixed = next(r for r in rep.study2 if r.model == "mixed")
    assert mixed.js_ci is None and mixed.no_interval.startswith("n=1 in 1 of")  # one thin cell is enough
    assert [c.js_ci is None for c in mixed.cells] == [c.n_trials < 2 for c in mixed.cells]
    (s1,) = rep.study1
    assert all(c.n_trials == 1 and set(c.ci.values()) == {None} for c in s1.conditions)
    assert [k.model_ci is None for k in s1.knowledge] == [k.n_trials < 2 for k in s1.knowledge]
    assert s1.reproduced_ci is None
    diff = next(d for d in rep.differences if d.measure == "js")
    assert diff.ci is None and diff.no_interval.startswith("n=1") and not diff.distinguishable
    md = (run / "compare" / "compare.md").read_text()
    assert "n=1, no interval" in md and "n=1 in 12 of 12 cells, no interval" in md
    assert not ZERO_WIDTH.search(md), ZERO_WIDTH.search(md)
    rows = ranking_rows(rep.ranking, STUDIES.values(), rep.references)
    thin_row = next(r for r in rows if r["model"] == "thin" and r["study"] == "study2")
    assert thin_row["human-likeness [95% CI]"].endswith("(n=1 in 12 of 12 cells, no interval)")
    assert not any(ZERO_WIDTH.search(v) for r in rows for v in r.values())
    data = json.loads((run / "compare" / "compare.json").read_text())
    assert data["study2"][0]["js_ci"] is None or data["study2"][1]["js_ci"] is None
