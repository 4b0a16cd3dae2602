"""The human comparison on constructed run folders: measures, scorecard, human files, messages, the CLI."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from grace.cli import main
from grace.compare.human import load_human
from grace.compare.metrics import js_divergence, paired_greater, pearson
from grace.compare.report import compare_run
from grace.errors import DataError
from grace.records import Exp2Record, OptionScores
from grace.studies.registry import STUDIES, get_study
from grace.studies.study1.compare import MIN_EFFECT
from grace.studies.study2 import UTTERANCES
from grace.studies.study2.human import CELLS

ROOT = Path(__file__).resolve().parent.parent
STUDY1 = get_study("study1")
STUDY2 = get_study("study2")
HUMAN = load_human(STUDIES.values())


# --- constructed run folders --------------------------------------------------------------------------

def _scores(probs: dict[str, float]) -> OptionScores:
    opts = list(probs)
    return OptionScores(prompt="...", options=opts, token_ids={o: [i] for i, o in enumerate(opts)},
                        logprobs={o: math.log(max(p, 1e-300)) for o, p in probs.items()}, probs=dict(probs),
                        probs_norm=dict(probs), entropy=0.0, argmax=max(probs, key=probs.get))


def write_exp2(folder: Path, model: str, study: str, rows: list[tuple[str, dict[str, dict[str, float]]]],
               status: str = "ok") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "exp2.jsonl", "a") as f:
        for tid, qs in rows:
            rec = Exp2Record(trial_id=tid, model=model, model_revision="r", study=study, prompt_version="v",
                             status=status, questions={k: _scores(v) for k, v in qs.items()})
            f.write(rec.model_dump_json() + "\n")


def write_extracted(folder: Path, model: str, rows: list[dict]) -> None:
    """One line per Exp 1 response, in the extraction stage's shape (schema fields under `fields`)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "extracted.jsonl", "a") as f:
        for r in rows:
            fields = {k: r[k] for k in ("utterance", "probabilities", "knowledge", "initial_answer") if k in r}
            f.write(json.dumps({"trial_id": r["trial_id"], "replicate": r.get("replicate", 0), "model": model,
                                "model_revision": "r", "study": "s", "prompt_version": "v",
                                "status": r.get("status", "ok"), "method": "rules", "fields": fields}) + "\n")


@pytest.fixture(scope="module")
def study2_trials() -> list[dict[str, str]]:
    return STUDY2.load(ROOT / "data" / "study2.csv")


@pytest.fixture(scope="module")
def study1_trials() -> list[dict[str, str]]:
    return STUDY1.load(ROOT / "data" / "study1.csv")


def cell_of(trial: dict[str, str]) -> tuple[str, str]:
    c = STUDY2.condition(trial)
    return c["goal"], c["state"]


def study2_exp2_rows(trials, dist_of) -> list:
    return [(t["trial_id"], {"utterance": dict(zip(UTTERANCES, dist_of(t), strict=True))}) for t in trials]


def no_nan(path: Path) -> dict:
    def refuse(c: str) -> None:
        raise AssertionError(f"{path} holds {c}")
    return json.loads(path.read_text(), parse_constant=refuse)


# --- metrics ------------------------------------------------------------------------------------------

def test_js_divergence_matches_scipy_and_pearson_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    p, q = rng.dirichlet(np.ones(8), size=20), rng.dirichlet(np.ones(8) * 0.3, size=20)
    q[:, 3] = 0
    expected = [jensenshannon(a, b, base=2) ** 2 for a, b in zip(p, q, strict=True)]
    assert np.allclose(js_divergence(p, q), expected)
    assert js_divergence(p[0], p[0]) == pytest.approx(0.0, abs=1e-12)
    assert js_divergence(np.eye(8)[0], np.eye(8)[1]) == pytest.approx(1.0)
    x, y = rng.random(96), rng.random(96)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic)
    assert np.isnan(pearson(np.full(96, 0.125), y))


def test_paired_test_is_scipys_one_sided_ttest() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(50, 10, 40), rng.normal(45, 10, 40)
    res = paired_greater(a, b)
    ref = stats.ttest_rel(a, b, alternative="greater")
    assert (res.statistic, res.p_value) == pytest.approx((ref.statistic, ref.pvalue))
    assert res.significant == (ref.pvalue < 0.05)
    assert not paired_greater(a[:1], b[:1]).significant and "not testable" in paired_greater(a[:1], b[:1]).note
    # against a smallest effect of interest: H0 mean(a - b) <= 5, scipy's test on a shifted by it
    shifted, ref = paired_greater(a, b, margin=5.0), stats.ttest_rel(a - 5.0, b, alternative="greater")
    assert (shifted.statistic, shifted.p_value) == pytest.approx((ref.statistic, ref.pvalue))
    assert shifted.p_value > res.p_value
    # a consistent difference: significant above 0, not above a margin larger than itself
    tiny = b + 0.01 + rng.normal(0, 1e-4, 40)
    assert paired_greater(tiny, b).significant and not paired_greater(tiny, b, margin=5.0).significant
    flat = paired_greater(b + 3.0, b, margin=5.0)
    assert not flat.significant and "decided by their size" in flat.note
    assert paired_greater(b + 6.0, b, margin=5.0).significant


# --- study 2 ------------------------------------------------------------------------------------------

def test_model_equal_to_human_table_gives_js_0_and_r_1(tmp_path: Path, cfg, study2_trials) -> None:
    folder = tmp_path / "run" / "human-like" / "study2"
    rows = study2_exp2_rows(study2_trials, lambda t: HUMAN.study2.cells[cell_of(t)])
    write_exp2(folder, "human-like", "study2", rows)
    rep = compare_run(tmp_path / "run", STUDIES.values(), cfg=cfg, n_boot=200, plots=False)
    (res,) = rep.study2
    assert res.status == "ok" and res.cells_compared == 12 and res.n_trials == 2424
    assert res.js == pytest.approx(0.0, abs=1e-12)
    assert res.r == pytest.approx(1.0)
    assert res.js_ci == pytest.approx((0.0, 0.0), abs=1e-12)
    assert all(c.js == pytest.approx(0.0, abs=1e-12) for c in res.cells)


def test_uniform_model_gives_the_expected_js(tmp_path: Path, cfg, study2_trials) -> None:
    folder = tmp_path / "run" / "uniform" / "study2"
    write_exp2(folder, "uniform", "study2", study2_exp2_rows(study2_trials, lambda t: np.full(8, 1 / 8)))
    rep = compare_run(tmp_path / "run", STUDIES.values(), cfg=cfg, n_boot=100, plots=False)
    (res,) = rep.study2
    # independently: the published rows, renormalised, against the uniform distribution, via scipy
    raw = pd.read_csv(ROOT / "data" / "human" / "study2_production.csv", comment="#")
    expected = []
    for _, row in raw.iterrows():
        h = row[list(UTTERANCES)].to_numpy(dtype=float)
        expected.append(jensenshannon(h / h.sum(), np.full(8, 1 / 8), base=2) ** 2)
    assert res.js == pytest.approx(float(np.mean(expected)), rel=1e-9)
    assert 0.2 < res.js < 0.7
    assert res.r is None and "constant" in res.r_note  # r is undefined, said so rather than NaN
    no_nan(tmp_path / "run" / "compare" / "compare.json")


def test_exp1_choices_with_unparseable_share_reported(tmp_path: Path, cfg, study2_trials) -> None:
    rng = np.random.default_rng(3)
    rows = []
    for i, t in enumerate(study2_trials[:600]):
        if i % 10 == 0:
            rows.append({"trial_id": t["trial_id"], "status": "unparseable", "utterance": None})
        else:
            choice = rng.choice(8, p=HUMAN.study2.cells[cell_of(t)])
            rows.append({"trial_id": t["trial_id"], "utterance": UTTERANCES[choice]})
    write_extracted(tmp_path / "run" / "m" / "study2", "m", rows)
    rep = compare_run(tmp_path / "run", STUDIES.values(), cfg=cfg, n_boot=100, plots=False)
    (res,) = rep.study2
    assert res.source == "exp1" and res.n_responses == 600 and res.unparseable == 60
    assert res.unparseable_share == pytest.approx(0.1)
    # frequencies of the parsed choices per cell, computed independently
    df = pd.DataFrame(rows).dropna(subset=["utterance"])
    df["cell"] = [cell_of(t) for t in study2_trials[:600] if t["trial_id"] in set(df.trial_id)]
    cell = res.cells[0]
    sub = df[df.cell == (cell.goal, cell.state)]
    assert cell.n_trials == len(sub)
    for u in UTTERANCES:
        assert cell.model[u] == pytest.approx((sub.utterance == u).mean())
    assert res.js < 0.1 and res.r > 0.8
    assert res.js_ci[0] <= res.js <= res.js_ci[1]


def test_missing_cells_are_named_not_nan(tmp_path: Path, cfg, study2_trials) -> None:
    some = [t for t in study2_trials if cell_of(t)[0] == "social"][:100]
    write_exp2(tmp_path / "run" / "m" / "study2", "m", "study2",
               study2_exp2_rows(some, lambda t: HUMAN.study2.cells[cell_of(t)]))
    rep = compare_run(tmp_path / "run", STUDIES.values(), cfg=cfg, n_boot=50)
    (res,) = rep.study2
    present = {cell_of(t) for t in some}
    assert res.status == "ok" and res.cells_compared == len(present) < 12
    assert len(res.cells_missing) == 12 - len(present) and "informative / 0 hearts" in res.cells_missing
    assert f"compared over {len(present)} of 12 cells" in res.message
    assert res.js == pytest.approx(0.0, abs=1e-12)
    no_nan(tmp_path / "run" / "compare" / "compare.json")
    assert "informative / 0 hearts" in (tmp_path / "run" / "compare" / "compare.md").read_text()


def test_all_unparseable_model_is_a_clear_status(tmp_path: Path, cfg, study2_trials, study1_trials, capsys) -> None:
    write_extracted(tmp_path / "run" / "mute" / "study2", "mute",
                    [{"trial_id": t["trial_id"], "status": "unparseable"} for t in study2_trials[:30]])
    write_extracted(tmp_path / "run" / "mute" / "study1", "mute",
                    [{"trial_id": t["trial_id"], "status": "refused"} for t in study1_trials[:30]])
    assert main(["compare", str(tmp_path / "run"), "--bootstrap", "50"]) == 0
    printed = capsys.readouterr().out
    assert "all-unparseable" in printed and "all 30 extracted responses are unparseable" in printed
    assert "all 30 responses lack usable posterior probabilities" in printed
    data = no_nan(tmp_path / "run" / "compare" / "compare.json")
    assert data["study2"][0]["js"] is None and data["study2"][0]["unparseable_share"] == 1.0
    assert data["study1"][0]["reproduced"] == 0


def test_conditions_come_from_the_stage_table_for_a_users_own_input(tmp_path: Path, cfg) -> None:
    """Trials from a user's CSV (not the configured one): conditions are read from the exp1 table."""
    folder = tmp_path / "run" / "m" / "study2"
    rows = [{"trial_id": f"mine-{i}", "Goal": "social", "State": "3 hearts", "Precontext": "p", "Scenario": "s",
             "SP_Name": "A", "LS_Name": "B"} for i in range(5)]
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(folder / "exp1.parquet")
    write_extracted(folder, "m", [{"trial_id": r["trial_id"], "utterance": "It was amazing"} for r in rows]
                    + [{"trial_id": "nowhere-1", "utterance": "It was bad"}])
    rep = compare_run(tmp_path / "run", STUDIES.values(), cfg=cfg, n_boot=20, plots=False)
    (res,) = rep.study2
    assert [(c.goal, c.state, c.n_trials) for c in res.cells] == [("social", "3 hearts", 5)]
    assert any("1 trial(s) with no known condition" in n for n in rep.notes)


# --- study 1 ------------------------------------------------------------------------------------------

# bets over states 0-3 per (access, observe), built so the model draws each published inference or not
PASS = {(3, 2): [5, 5, 85, 5], (2, 2): [5, 5, 45, 45], (3, 1): [5, 85, 5, 5], (1, 1): [5, 30, 32, 33],
        (2, 1): [5, 45, 45, 5], (3, 3): [5, 5, 5, 85]}
FAIL = {(3, 2): [5, 5, 40, 50], (2, 2): [5, 5, 85, 5], (3, 1): [5, 20, 40, 35], (1, 1): [5, 85, 5, 5],
        (2, 1): [5, 40, 5, 50], (3, 3): [5, 5, 5, 85]}


def study1_rows(trials, table, seed: int = 0, know=lambda a: a / 3.5) -> list:
    rng = np.random.default_rng(seed)
    rows = []
    for t in trials:
        cond = (int(t["access"]), int(t["observe"]))
        p = np.clip(np.array(table[cond], dtype=float) + rng.normal(0, 3, 4), 0.5, None)
        rows.append((t["trial_id"], {"posterior": dict(zip("0123", p / p.sum(), strict=True)),
                                     "knowledge": {"yes": know(cond[0]), "no": 1 - know(cond[0])}}))
    return rows


@pytest.mark.parametrize(("table", "expected"), [(PASS, 8), (FAIL, 0)])
def test_scorecard_reproduces_or_fails_each_finding(tmp_path: Path, cfg, study1_trials, table, expected) -> None:
    rows = study1_rows(study1_trials, table)
    write_exp2(tmp_path / "run" / "m" / "study1", "m", "study1", rows)
    rep = compare_run(tmp_path / "run", STUDIES.values(), cfg=cfg, n_boot=200, plots=False)
    (res,) = rep.study1
    assert res.findings_total == 8 and res.reproduced == expected
    assert all(f.reproduced == (expected == 8) for f in res.findings)
    # each finding's statistic and p-value are scipy's paired t-test on the model's per-trial bets
    bets = {tid: q["posterior"] for tid, q in rows}
    for f in res.findings:
        ids = [t["trial_id"] for t in study1_trials if (int(t["access"]), int(t["observe"])) == (f.access, f.observe)]
        a = np.array([100 * bets[i][str(f.state_a)] for i in ids])
        b = np.array([100 * bets[i][str(f.state_b)] for i in ids])
        ref = stats.ttest_rel(a - MIN_EFFECT, b, alternative="greater")  # against the smallest effect of interest
        assert f.n_trials == len(ids) == 50 and f.min_effect == MIN_EFFECT == 5.0
        assert (f.statistic, f.p_value) == pytest.approx((ref.statistic, ref.pvalue))
        assert f.model_significant == (ref.pvalue < 0.05)
    lo, hi = res.reproduced_ci
    assert lo <= expected <= hi


def test_scorecard_counts_one_failed_finding(tmp_path: Path, cfg, study1_trials) -> None:
    table = dict(PASS)
    table[(3, 2)] = [5, 5, 40, 50]  # no upper-bounded reading of "two" at full access
    write_exp2(tmp_path / "run" / "m" / "study1", "m", "study1", study1_rows(study1_trials, table))
    (res,) = compare_run(tmp_path / "run", STUDIES.values(), cfg=cfg, n_boot=100, plots=False).study1
    assert res.reproduced == 7
    assert [f.label for f in res.findings if not f.reproduced] == ["observe 2, access 3: state 2 > state 3"]


def test_knowledgeability_and_exp1_bets(tmp_path: Path, cfg, study1_trials) -> None:
    human_like = {1: 0.271, 2: 0.348, 3: 0.93}
    write_exp2(tmp_path / "run" / "m" / "study1", "m", "study1",
               study1_rows(study1_trials, PASS, know=lambda a: human_like[a]))
    ext = []
    for i, t in enumerate(study1_trials):
        cond = (int(t["access"]), int(t["observe"]))
        p = np.array(PASS[cond], dtype=float) + (i % 7)
        ext.append({"trial_id": t["trial_id"], "probabilities": dict(zip("0123", p / p.sum(), strict=True)),
                    "knowledge": "yes" if cond[0] == 3 else "no", "initial_answer": 3,
                    "status": "ok" if i % 5 else "partial"})
    ext[0] = {"trial_id": study1_trials[0]["trial_id"], "status": "unparseable"}
    write_extracted(tmp_path / "run" / "m" / "study1", "m", ext)
    rep = compare_run(tmp_path / "run", STUDIES.values(), cfg=cfg, n_boot=100)
    exp2, exp1 = rep.study1
    assert (exp2.source, exp1.source) == ("exp2", "exp1")
    assert [round(k.model_mean, 1) for k in exp2.knowledge] == [27.1, 34.8, 93.0]
    assert [k.human_mean for k in exp2.knowledge] == [27.1, 34.8, 93.0]
    assert exp2.knowledge_order_matches is True
    assert [k.model_mean for k in exp1.knowledge] == [0.0, 0.0, 100.0]
    assert exp1.unparseable == 1 and exp1.unparseable_share == pytest.approx(1 / 300)
    assert exp1.n_trials == 299 and exp1.reproduced == 8
    assert (tmp_path / "run" / "compare" / "study1.png").stat().st_size > 10_000


# --- human data files ---------------------------------------------------------------------------------

def test_shipped_human_data() -> None:
    assert set(HUMAN.study2.cells) == set(CELLS)
    assert all(abs(v.sum() - 1) < 1e-12 for v in HUMAN.study2.cells.values())
    assert HUMAN.study2.cells[("informative", "0 hearts")][0] == pytest.approx(0.581 / 1.001)
    assert len(HUMAN.study1.findings) == 8 and sum(f.humans for f in HUMAN.study1.findings) == 4
    assert HUMAN.study1.knowledgeability == {1: (27.1, 4.9), 2: (34.8, 5.7), 3: (93.0, 2.7)}
    for name in ("study2_production.csv", "study1_findings.csv", "study1_knowledgeability.csv"):
        assert "Topics in Cognitive Science" in (ROOT / "data/human" / name).read_text() or \
            "Open Mind" in (ROOT / "data/human" / name).read_text()


def test_user_choice_file_replaces_the_published_table(tmp_path: Path) -> None:
    f = tmp_path / "mine.csv"
    f.write_text("# my lab's replication\ngoal,state,utterance,participant\nsocial,1 heart,It was good,1\n"
                 "to make the listener feel good,1 heart,It was amazing,2\nsocial,1 hearts,It was good,3\n")
    h = load_human(STUDIES.values(), [f])
    assert set(h.study2.cells) == {("social", "1 heart")}
    assert h.study2.cells[("social", "1 heart")][UTTERANCES.index("It was good")] == pytest.approx(2 / 3)
    assert len(h.study1.findings) == 8  # the other kinds stay the published ones


def _authors_raw_file(path: Path) -> dict[tuple[str, str], np.ndarray]:
    """A speaker-production file in the authors' form (a row per choice: subid,trial,item,goal,true_state,
    positivity,utterance) whose counts reproduce the shipped table: round(proportion x n) per utterance."""
    shipped = pd.read_csv(ROOT / "data" / "human" / "study2_production.csv", comment="#")
    counts: dict[tuple[str, str], np.ndarray] = {}
    lines = ["subid,trial,item,goal,true_state,positivity,utterance"]
    for _, row in shipped.iterrows():
        c = np.rint(row[list(UTTERANCES)].to_numpy(dtype=float) * row["n"]).astype(int)
        counts[(row["goal"], row["state"])] = c
        state = f"heart{int(row['state'][0])}"
        subject = 0
        for u, k in zip(UTTERANCES, c, strict=True):
            positivity = "neg" if "wasn't" in u else "no_neg"
            for _ in range(k):
                subject += 1
                lines.append(f"s{subject:03d},{subject % 12 + 1},presentation,{row['goal']},{state},{positivity},"
                             f"{u.rsplit(' ', 1)[1]}")
    path.write_text("\n".join(lines) + "\n")
    return counts


def test_authors_raw_file_gives_the_same_figures_as_the_equivalent_table(tmp_path: Path, cfg, study2_trials
                                                                         ) -> None:
    raw = tmp_path / "speaker_production.csv"
    counts = _authors_raw_file(raw)
    table = tmp_path / "table.csv"  # the same counts as a proportions table
    table.write_text("goal,state,n," + ",".join(UTTERANCES) + "\n" + "".join(
        f"{g},{s},{c.sum()}," + ",".join(repr(float(x / c.sum())) for x in c) + "\n" for (g, s), c in counts.items()))
    h_raw, h_table = load_human(STUDIES.values(), [raw]).study2, load_human(STUDIES.values(), [table]).study2
    assert h_raw.source == str(raw) and set(h_raw.cells) == set(CELLS)
    for cell in CELLS:
        assert h_raw.cells[cell] == pytest.approx(h_table.cells[cell], abs=1e-12)
        assert h_raw.n[cell] == h_table.n[cell] == counts[cell].sum()
        assert h_raw.cells[cell] == pytest.approx(HUMAN.study2.cells[cell], abs=0.003)  # the shipped, rounded
    # "It wasn't good" is positivity neg + utterance good
    informative0 = counts[("informative", "0 hearts")]
    assert h_raw.cells[("informative", "0 hearts")][UTTERANCES.index("It wasn't good")] == pytest.approx(
        informative0[UTTERANCES.index("It wasn't good")] / informative0.sum())
    rng = np.random.default_rng(7)
    noisy = {c: rng.dirichlet(np.ones(8)) for c in CELLS}
    write_exp2(tmp_path / "run" / "m" / "study2", "m", "study2",
               study2_exp2_rows(study2_trials, lambda t: noisy[cell_of(t)]))
    figures = []
    for human in (raw, table):
        assert main(["compare", str(tmp_path / "run"), "--human", str(human), "--out", str(tmp_path / human.stem),
                     "--no-plots", "--bootstrap", "200"]) == 0
        out = json.loads((tmp_path / human.stem / "compare.json").read_text())
        # the model's figures; the humans' own (noise ceiling, their findings' intervals) need the participants
        model_side = [{k: v for k, v in r.items() if k not in {"source", "js_vs_ceiling", "findings"}}
                      | {"findings": [{k: v for k, v in f.items() if not k.startswith("human")} for f in r["findings"]]}
                      for r in out["study2"]]
        figures.append(model_side)
        assert str(human) in json.dumps(out)
    assert figures[0] == figures[1] and figures[0][0]["cells_compared"] == 12


RAW_HEADER = "subid,trial,item,goal,true_state,positivity,utterance\n"


@pytest.mark.parametrize(("row", "message"), [
    ("s1,1,poem,social,heart4,neg,good", "line 3, column 'true_state': 'heart4' is not one of heart0, heart1"),
    ("s1,1,poem,social,heart1,negated,good", "line 3, column 'positivity': 'negated' is not one of no_neg, neg"),
    ("s1,1,poem,social,heart1,neg,okay", "line 3, column 'utterance': 'okay' is not one of terrible, bad, good"),
    ("s1,1,poem,kind,heart1,neg,good", "line 3, column 'goal': 'kind' is not one of informative, social, both"),
])
def test_authors_raw_file_refuses_unknown_values(tmp_path: Path, row: str, message: str) -> None:
    f = tmp_path / "raw.csv"
    f.write_text(RAW_HEADER + "s0,1,poem,both,heart0,no_neg,terrible\n" + row + "\n")
    with pytest.raises(DataError) as e:
        load_human(STUDIES.values(), [f])
    assert message in str(e.value) and str(f) in str(e.value) and "\n" not in str(e.value)


def test_authors_raw_file_needs_its_columns(tmp_path: Path) -> None:
    f = tmp_path / "raw.csv"
    f.write_text("subid,goal,true_state,utterance\ns1,social,heart1,good\n")
    with pytest.raises(DataError, match="missing 'positivity'"):
        load_human(STUDIES.values(), [f])


BAD_FILES = [
    ("goal,state,n," + ",".join(UTTERANCES) + "\ninformative,0 hearts,10,0.5,0.5,0.5,0,0,0,0,0\n",
     "line 2: the 8 proportions sum to 1.500"),
    ("goal,state,n," + ",".join(UTTERANCES) + "\ncurious,0 hearts,10,1,0,0,0,0,0,0,0\n",  # "kind" reads as social
     "line 2, column 'goal': 'curious' is not informative, social or both"),
    ("goal,state,n," + ",".join(UTTERANCES) + "\nsocial,5 hearts,10,1,0,0,0,0,0,0,0\n",
     "column 'state': '5 hearts' is not"),
    ("goal,state,n," + ",".join(UTTERANCES) + "\nsocial,1 heart,10,x,0,0,0,0,0,0,1\n",
     "column 'It was terrible': 'x' is not a number"),
    ("goal,state,utterance\nsocial,1 heart,It was nice\n", "'It was nice' is not one of the 8 utterances"),
    ("goal,state,It was terrible\nsocial,1 heart,1\n", "needs either the 8 utterance columns"),
    ("a,b\n1,2\n", "not a known human-data format"),
    ("observe,access,state_a,state_b,humans\n2,1,2,3,yes\n", "column 'observe': '2' is not a whole number in 0..1"),
    ("observe,access,state_a,state_b,humans\n1,3,1,2,maybe\n", "column 'humans': 'maybe' is not yes or no"),
    ("access,mean,sd\n1,127,3\n", "column 'mean': 127 is outside 0..100"),
    ("# only a comment\n", "no header"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_malformed_user_file_is_a_one_line_error(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "human.csv"
    f.write_text(text)
    with pytest.raises(DataError) as e:
        load_human(STUDIES.values(), [f])
    assert message in str(e.value) and str(f) in str(e.value) and "\n" not in str(e.value)


def test_cli_exit_2_on_bad_human_file_and_missing_run(tmp_path: Path, capsys, study2_trials) -> None:
    write_exp2(tmp_path / "run" / "m" / "study2", "m", "study2",
               study2_exp2_rows(study2_trials[:12], lambda t: np.full(8, 1 / 8)))
    bad = tmp_path / "bad.csv"
    bad.write_text("goal,state,utterance\nsocial,1 heart,It was nice\n")
    assert main(["compare", str(tmp_path / "run"), "--human", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("grace compare: error:") and "line 2" in err and len(err.strip().splitlines()) == 1
    assert main(["compare", str(tmp_path / "nothing")]) == 2
    assert "run folder not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(tmp_path / "empty")]) == 2
    assert "no <model>/<study>/exp2.jsonl or extracted.jsonl" in capsys.readouterr().err


# --- the whole run: ranking, variants, plots, reproducibility, time -----------------------------------

def test_ranked_table_with_variants_side_by_side(tmp_path: Path, cfg, study2_trials, capsys) -> None:
    run = tmp_path / "run"
    rng = np.random.default_rng(5)
    for model, noise in (("gemma2-27b", 0.1), ("gemma2-27b-awq", 2.0), ("toy", 50.0)):
        write_exp2(run / model / "study2", model, "study2", study2_exp2_rows(
            study2_trials, lambda t, s=noise: rng.dirichlet(1 + 100 / s * HUMAN.study2.cells[cell_of(t)])))
    t0 = time.perf_counter()
    assert main(["compare", str(run), "--bootstrap", "300"]) == 0
    elapsed = time.perf_counter() - t0
    out = capsys.readouterr().out
    rep = json.loads((run / "compare" / "compare.json").read_text())
    ranked = [(r["rank"], r["model"]) for r in rep["ranking"]]
    assert ranked == [(1, "gemma2-27b"), (2, "gemma2-27b-awq"), (3, "toy")]
    assert rep["ranking"][1]["variant_of"] == "gemma2-27b"
    assert rep["variants"] == [{"model": "gemma2-27b-awq", "base": "gemma2-27b", "study": "study2", "source": "exp2",
                                "model_js": rep["ranking"][1]["js"], "base_js": rep["ranking"][0]["js"],
                                "model_findings": "8/8", "base_findings": "8/8"}]
    assert "gemma2-27b-awq (variant of gemma2-27b)" in out and "Quantized vs full precision" in \
        (run / "compare" / "compare.md").read_text()
    for r in rep["ranking"]:
        assert r["js_ci"][0] <= r["js"] <= r["js_ci"][1] and r["r_ci"][0] <= r["r"] <= r["r_ci"][1]
    assert (run / "compare" / "study2_exp2.png").stat().st_size > 20_000
    print(f"3 models x 2,424 study2 trials, 300 resamples, with plots: {elapsed:.1f}s")


def test_bootstrap_is_seeded(tmp_path: Path, cfg, study2_trials) -> None:
    rng = np.random.default_rng(9)
    write_exp2(tmp_path / "run" / "m" / "study2", "m", "study2",
               study2_exp2_rows(study2_trials[:240], lambda t: rng.dirichlet(np.ones(8))))
    a = compare_run(tmp_path / "run", STUDIES.values(), cfg=cfg, n_boot=100, seed=1, plots=False).study2[0]
    b = compare_run(tmp_path / "run", STUDIES.values(), cfg=cfg, n_boot=100, seed=1, plots=False).study2[0]
    c = compare_run(tmp_path / "run", STUDIES.values(), cfg=cfg, n_boot=100, seed=2, plots=False).study2[0]
    assert a.js_ci == b.js_ci and a.r_ci == b.r_ci and a.js_ci != c.js_ci


def test_time_for_2424_study2_trials_both_sources(tmp_path: Path, cfg, study2_trials) -> None:
    rng = np.random.default_rng(4)
    folder = tmp_path / "run" / "m" / "study2"
    write_exp2(folder, "m", "study2", study2_exp2_rows(study2_trials, lambda t: rng.dirichlet(np.ones(8))))
    write_extracted(folder, "m", [{"trial_id": t["trial_id"], "utterance": UTTERANCES[rng.integers(8)]}
                                  for t in study2_trials])
    rep = compare_run(tmp_path / "run", STUDIES.values(), cfg=cfg, plots=False)  # default 1000 resamples
    assert [r.n_trials for r in rep.study2] == [2424, 2424]
    print(f"2,424 study2 trials (exp2 + exp1), 1000 resamples, no plots: {rep.seconds:.2f}s")
    assert rep.seconds < 60
