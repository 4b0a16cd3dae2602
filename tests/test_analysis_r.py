"""R reads Grace: grace.R recomputes the human comparison's figures from the all-models tables alone and agrees
with compare.json and report.json to 1e-6; readr reads the same rows as pandas and Frictionless; a script in the
lab's style (tidyverse + here, outputs/analysis/) runs unchanged on a run's analysis folder.

Real R (Debian's r-base-core and r-cran-tidyverse, installed by scripts/setup.sh); the run folders are laid out as
a served run leaves them (tests/support/analysis_run.py). The same check on a real two-model run against the vLLM
server is tests/test_analysis_run.py.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from frictionless import validate

from grace.analysis.figures import disagreements, python_figures
from grace.config import Config, load_config
from grace.studies.registry import get_study
from tests.support.analysis_run import made_run
from tests.support.rscript import grace_r, rscript

ROOT = Path(__file__).resolve().parent.parent
STUDY1, STUDY2 = get_study("study1"), get_study("study2")


def check_figures(run: Path) -> dict:
    """grace.R's figures on RUN equal Grace's own (compare.json, report.json) to 1e-6, every one on both sides."""
    python, r = python_figures(run), grace_r(run)
    problems = disagreements(python, r)
    assert not problems, f"{len(problems)} of {len(python)} figures disagree:\n" + "\n".join(problems[:30])
    return r


@pytest.fixture(scope="module")
def cfg() -> Config:
    return load_config(ROOT / "config")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, cfg: Config) -> Path:
    """Two models, 60 study 1 trials (every condition, each finding testable) and 96 study 2 trials (the 12 goal x
    state cells), 2 replicates; replies in the study's format, off-format, refused, with newlines and quotes."""
    inputs = {STUDY1: STUDY1.load(ROOT / "data" / "study1.csv", limit=60),
              STUDY2: STUDY2.load(ROOT / "data" / "study2.csv", limit=96)}
    return made_run(tmp_path_factory.mktemp("analysis-r") / "run", cfg, inputs, ("toy", "gemma2-tiny"))


def test_grace_r_recomputes_the_comparison_to_1e6(run: Path) -> None:
    r = check_figures(run)
    kinds = Counter((study, source, figure) for _, study, source, figure, _ in r)
    for source in ("exp1", "exp2"):  # every headline figure is there, for both models
        assert kinds["study2", source, "js"] == 2 and kinds["study2", source, "cell_js"] == 2 * 12
        assert kinds["study1", source, "reproduced"] == 2 and kinds["study1", source, "finding_p_value"] == 2 * 8
    assert kinds["study1", "exp1~exp2", "agreement_pairs"] == 2 * 3 and kinds["study2", "exp1~exp2",
                                                                               "agreement_agree"] == 2
    assert all(v > 0 for k, v in r.items() if k[3] == "agreement_pairs")  # real pairs, not zero against zero
    compare = json.loads((run / "compare" / "compare.json").read_text())
    assert {f["p_value"] is None for res in compare["study1"] for f in res["findings"]} == {False}


def test_grace_r_reads_the_table_it_is_checked_on(run: Path, tmp_path: Path) -> None:
    """One probability changed in the CSV: grace.R's study 2 figures move away from compare.json's (the check can
    fail, and grace.R reads the table, not Grace's JSON)."""
    copy = shutil.copytree(run, tmp_path / "run")
    path = copy / "analysis" / "study2_exp2_all_models.csv"
    df = pd.read_csv(path, keep_default_na=False, dtype=str)
    i = df.index[(df.status == "ok") & (df.option == "It was good")][0]
    df.loc[i, "prob"] = str(float(df.loc[i, "prob"]) + 0.3)
    df.to_csv(path, index=False)
    problems = disagreements(python_figures(copy), grace_r(copy))
    assert any("'study2', 'exp2', 'js', ''" in p for p in problems)
    assert not any("study1" in p for p in problems)


def test_grace_r_on_the_labs_own_csvs_with_untestable_findings(tmp_path: Path, cfg: Config) -> None:
    """The lab's forms (other column order, extra columns, Goal in the lab's wording, 7 study 1 trials: conditions
    with fewer than two trials, whose findings are not testable)."""
    inputs = {STUDY1: STUDY1.load(ROOT / "tests" / "lab_forms" / "study1_lab.csv"),
              STUDY2: STUDY2.load(ROOT / "tests" / "lab_forms" / "study2_lab.csv")}
    run = made_run(tmp_path / "run", cfg, inputs, ("toy", "lab-model"))
    r = check_figures(run)
    compare = json.loads((run / "compare" / "compare.json").read_text())
    untestable = [f["label"] for res in compare["study1"] for f in res["findings"] if f["p_value"] is None]
    assert untestable and all(("toy", "study1", "exp2", "finding_p_value", label) not in r for label in untestable)


def test_readr_pandas_and_frictionless_read_the_same_rows(run: Path, tmp_path: Path) -> None:
    a = run / "analysis"
    out = tmp_path / "r.json"
    rscript("-e", f"""
        source("{a / 'grace.R'}")
        tables <- grace_read("{a}")
        plain <- lapply(names(tables), function(n) nrow(readr::read_csv(file.path("{a}", paste0(n, ".csv")),
                                                                         show_col_types = FALSE)))
        jsonlite::write_json(list(typed = lapply(tables, nrow), plain = setNames(plain, names(tables)),
                                  problems = lapply(tables, function(t) nrow(readr::problems(t))),
                                  responses = tables$study1_exp1_all_models$response,
                                  types = lapply(tables$study1_exp1_all_models, function(c) class(c)[1])),
                             "{out}", auto_unbox = TRUE, na = "null")""")
    got = json.loads(out.read_text())
    report = validate(str(a / "datapackage.json"))
    assert report.valid
    frictionless_rows = {t.name: t.stats["rows"] for t in report.tasks}
    pandas_rows = {n: len(pd.read_csv(a / f"{n}.csv")) for n in frictionless_rows}
    assert got["typed"] == got["plain"] == pandas_rows == frictionless_rows
    assert set(got["problems"].values()) == {0}
    sent = pd.read_parquet(a / "study1_exp1_all_models.parquet").response
    assert got["responses"] == [None if pd.isna(v) else v for v in sent]  # newlines, quotes, "NA", spaces: exact
    assert "NA" in got["responses"] and any("\r\n" in v for v in got["responses"] if v)
    assert got["types"]["access"] == "numeric" and got["types"]["sums_to_100"] == "logical"
    assert got["types"]["response"] == "character" and got["types"]["p0"] == "numeric"


def test_a_script_in_the_labs_style_runs_unchanged(run: Path, tmp_path: Path) -> None:
    """The lab points its project's outputs/analysis/ at the run's analysis folder and runs its script as is."""
    lab = tmp_path / "lab"
    (lab / "scripts").mkdir(parents=True)
    (lab / ".here").touch()  # here::here() finds the project root
    shutil.copytree(run / "analysis", lab / "outputs" / "analysis")
    shutil.copy(ROOT / "tests" / "lab_analysis" / "lab_script.R", lab / "scripts" / "lab_script.R")
    rscript("lab_script.R", cwd=lab / "scripts")  # run from its folder: here() climbs to the project root
    tables = pd.read_csv(lab / "outputs" / "tables" / "study1_by_model_and_condition.csv")
    e1 = pd.read_parquet(run / "analysis" / "study1_exp1_all_models.parquet")
    assert len(tables) == len(e1.groupby(["model_name", "access", "observe"]))
    assert tables.n.sum() == len(e1) and set(tables.model_name) == {"toy", "gemma2-tiny"}
    figures = sorted(p.name for p in (lab / "outputs" / "figures").glob("*.png"))
    assert figures == ["study2_reply_length.png", "study2_responses_gemma2-tiny.png", "study2_responses_toy.png"]
    assert all((lab / "outputs" / "figures" / f).stat().st_size > 5000 for f in figures)
