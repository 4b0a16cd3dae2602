"""The verdict where the researcher looks first, without a server: the states a stage, a model and a run end in
(their names carry the verdict), the preflight's rule for a study that will fail, the comparison ranked like
with like and two runs side by side, and the run form's schema (no "None" types, choices from the config)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from prefect.utilities.callables import parameter_schema_from_entrypoint
from scipy.stats import binomtest

from grace.cli import main
from grace.compare.report import compare_run
from grace.config import load_config
from grace.preflight import over_limit
from grace.report.build import build_report
from grace.report.checks import MAX_TRUNCATION_RATE, MIN_OK_RATE
from grace.report.limits import model_verdicts, stage_breaches
from grace.report.verdict import Verdict
from grace.studies.registry import STUDIES, get_studies, get_study
from tasks.artifacts import run_key
from tasks.verdict import FIT, NOT_FIT, stage_outcome, stage_state, verdict_state
from tests.conftest import ROOT
from tests.test_compare import HUMAN, cell_of, study2_exp2_rows, write_exp2, write_extracted
from tests.test_report import _study1_stage


def _cut(stage: Path, n: int) -> None:
    """The first `n` Exp 1 replies of a stage folder cut by max_tokens."""
    lines = [json.loads(x) for x in (stage / "exp1.jsonl").read_text().splitlines()]
    for rec in lines[:n]:
        rec.update(finish_reason="length", status="truncated")
    (stage / "exp1.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def test_a_stage_over_a_limit_names_the_breach_and_ends_not_fit(tmp_path: Path) -> None:
    d, study1 = _study1_stage(tmp_path / "run", "m", n=10), get_study("study1")
    assert stage_breaches(d, study1, "exp1") == []
    _cut(d, 3)  # 30% cut, the limit is 20%
    assert stage_breaches(d, study1, "exp1") == ["exp1: 30.0% of replies cut by max_tokens (limit 20%)"]
    assert stage_breaches(d, study1, "exp2") == [] and stage_breaches(d, study1, "extract") == []
    summary = {"model": "m", "ok": 10}
    assert stage_state(summary, [], "m study1-exp1") is summary
    state = stage_state(summary, stage_breaches(d, study1, "exp1"), "m study1-exp1")
    assert state.is_failed() and state.name == NOT_FIT  # red on the badge, "Not fit" written on it
    assert state.message == "m study1-exp1: exp1: 30.0% of replies cut by max_tokens (limit 20%)"
    assert stage_outcome(state)["limits"] == ["exp1: 30.0% of replies cut by max_tokens (limit 20%)"]


def test_a_models_verdict_is_the_reports(tmp_path: Path) -> None:
    run = tmp_path / "run"
    d = _study1_stage(run, "m", n=10)
    _cut(d, 3)
    (v,) = model_verdicts(run / "m", get_studies(["study1", "study2"]))
    build_report(run, STUDIES.values())
    report = json.loads((run / "report" / "report.json").read_text())["models"]["m"]["study1"]
    assert (v.fit, v.reason) == (report["fit"], report["reasons"][0]) == (False, "exp1: 30.0% of replies cut by "
                                                                                 "max_tokens (limit 20%)")
    (d / "extracted.jsonl").unlink()
    assert not model_verdicts(run / "m", get_studies(["study1"]))[0].fit  # the extraction is missing ...
    pending = model_verdicts(run / "m", get_studies(["study1"]), extraction_pending=True)
    assert pending[0].reason.startswith("exp1: 30.0%")


def test_the_runs_state_carries_the_verdict() -> None:
    fit, unfit = Verdict("m", "study1", True), Verdict("m", "study2", False, "extracted: 50.0% of replies read")
    done = verdict_state([fit])
    assert done.is_completed() and done.name == FIT and done.message == "m/study1 fit"
    mixed = verdict_state([fit, unfit], data={"run_dir": "x"})
    assert mixed.is_completed() and mixed.name == NOT_FIT
    assert mixed.message == "m/study2 not fit: extracted: 50.0% of replies read; m/study1 fit"
    red = verdict_state([fit, unfit], fail_on_unfit=True)
    assert red.is_failed() and red.name == NOT_FIT
    assert verdict_state([fit], fail_on_unfit=True).is_completed()
    assert verdict_state([]).name == "Completed"


@pytest.mark.parametrize(("hits", "n", "limit", "above", "stops"), [
    (0, 2, MIN_OK_RATE, False, True),  # no reply of two read: the study will fall below 80% read
    (1, 2, MIN_OK_RATE, False, False),  # one of two: not evidence enough
    (2, 2, MAX_TRUNCATION_RATE, True, True),  # both replies cut: the study will pass the 20% limit
    (1, 2, MAX_TRUNCATION_RATE, True, False),
    (0, 2, MAX_TRUNCATION_RATE, True, False),
    (3, 10, MIN_OK_RATE, False, True),
    (7, 10, MIN_OK_RATE, False, False),
    (0, 0, MIN_OK_RATE, False, False),  # no reply: nothing to judge
])
def test_the_preflight_stops_a_study_only_on_evidence(hits: int, n: int, limit: float, above: bool,
                                                      stops: bool) -> None:
    assert over_limit(hits, n, limit, above) is stops
    if n:  # the same decision as scipy's exact binomial test, one-sided at 5%
        p = binomtest(hits, n, limit, alternative="greater" if above else "less").pvalue
        assert bool(p < 0.05) == stops, p


def test_the_comparison_ranks_exp1_and_exp2_apart(tmp_path: Path, cfg, capsys: pytest.CaptureFixture[str]) -> None:
    trials = get_study("study2").load(ROOT / "data" / "study2.csv")[:96]
    rng = np.random.default_rng(1)
    run = tmp_path / "run"
    for model in ("a", "b"):
        write_exp2(run / model / "study2", model, "study2", study2_exp2_rows(
            trials, lambda t: rng.dirichlet(1 + 20 * HUMAN.study2.cells[cell_of(t)])))
        write_extracted(run / model / "study2", model, [{"trial_id": t["trial_id"], "utterance": "It was good"}
                                                        for t in trials])
    rep = compare_run(run, STUDIES.values(), cfg=cfg, n_boot=50, plots=False)
    ranks = {(r.source, r.model): (r.rank, r.tied_with) for r in rep.ranking}
    assert sorted(ranks) == [("exp1", "a"), ("exp1", "b"), ("exp2", "a"), ("exp2", "b")]
    assert min(ranks["exp2", m][0] for m in "ab") == 1 == min(ranks["exp1", m][0] for m in "ab")  # each its own
    # the same extracted answer from both: their Exp 1 is tied, whatever their Exp 2 does
    assert ranks["exp1", "a"] == (1, ["b"]) and ranks["exp1", "b"] == (1, ["a"])
    md = (run / "compare" / "compare.md").read_text()
    assert "### study2, Exp 2 (option probabilities)" in md and "### study2, Exp 1 (extracted answers)" in md
    assert "[a](../trials.html#model=a&study=study2&phase=study&exp2=ok)" in md


def test_two_runs_side_by_side(tmp_path: Path, cfg, capsys: pytest.CaptureFixture[str]) -> None:
    trials = get_study("study2").load(ROOT / "data" / "study2.csv")[:96]
    rng = np.random.default_rng(2)
    for run, noise in (("run-a", 50.0), ("run-b", 0.5)):
        write_exp2(tmp_path / run / "m" / "study2", "m", "study2", study2_exp2_rows(
            trials, lambda t, s=noise: rng.dirichlet(1 + 100 / s * HUMAN.study2.cells[cell_of(t)])))
    build_report(tmp_path / "run-b", STUDIES.values())
    assert main(["compare", str(tmp_path / "run-a"), str(tmp_path / "run-b"), "--bootstrap", "50",
                 "--no-plots"]) == 0
    out = tmp_path / "compare-run-a-vs-run-b"
    tables = json.loads((out / "compare.json").read_text())["tables"]
    (t,) = tables
    assert (t["study"], t["source"], t["runs"]) == ("study2", "exp2", ["run-a", "run-b"])
    row, ceiling = t["rows"]  # the model, then the humans' noise ceiling (the same for both runs)
    assert ceiling["model"] == "humans: split-half noise ceiling" and ceiling["run-a"] == ceiling["run-b"], ceiling
    js = {r: float(row[r].split()[1]) for r in ("run-a", "run-b")}
    assert js["run-b"] < js["run-a"], row  # the run closer to the humans reads closer
    assert row["run-b"].endswith("✓ fit") and row["run-a"].endswith("· —")  # run-a has no report: no verdict
    assert (out / "run-a" / "compare.json").exists() and not (tmp_path / "run-a" / "compare").exists()
    assert "| model | run-a | run-b |" in capsys.readouterr().out
    assert main(["compare", str(tmp_path / "run-a"), str(tmp_path / "run-a")]) == 2


def test_the_run_form_shows_no_type_jargon_and_offers_the_configs_choices() -> None:
    schema = parameter_schema_from_entrypoint(f"{ROOT}/flows/grace_flow.py:grace").model_dump_for_openapi()
    props = schema["properties"]
    for name, prop in props.items():  # the UI shows an anyOf as tabs named "int" / "None"
        assert "anyOf" not in prop and "oneOf" not in prop and prop.get("type") != "null", (name, prop)
    assert props["models"]["items"]["enum"] == list(load_config().models)
    assert props["studies"]["items"]["enum"] == ["study1", "study2"]
    assert props["limit"] == {**props["limit"], "type": "integer", "minimum": 1}
    assert props["extract_llm"]["type"] == "boolean" and props["study_id"]["type"] == "string"


def test_a_named_studys_artifacts_keep_their_own_history() -> None:
    assert run_key(None, "run") == "grace-run" and run_key(None, "smollm2", "stages") == "grace-smollm2-stages"
    assert run_key("2026-12-main", "run") == "grace-2026-12-main-run"
    assert run_key("2026-12-main", "gemma2-27b", "preflight") == "grace-2026-12-main-gemma2-27b-preflight"
    assert run_key("Main_Study.v2", "report") == "grace-main-study-v2-report"  # as Prefect's key rules allow
