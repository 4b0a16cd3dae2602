"""The analysis folder of real runs: a two-model run on the real vLLM server (toy and gemma2-tiny, both studies'
samples, Exp 1, Exp 2, extraction) built with the command line, then `grace compare` and `grace report`; and the
flow's sample run through a real Prefect worker. grace.R's figures must equal Grace's own to 1e-6."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from frictionless import validate
from prefect.client.orchestration import get_client

from grace.analysis.figures import disagreements, python_figures
from grace.checkpoint import Checkpoint
from grace.cli import main
from grace.records import Exp1Record, Exp2Record
from grace.serving import Endpoint
from tests.conftest import SampleRun
from tests.support.prefect_runs import run_tree, task_runs_of
from tests.support.rscript import grace_r, rscript

MODELS = ("toy", "gemma2-tiny")
STUDIES = ("study1", "study2")
TABLES = [f"{s}_{e}_all_models" for s in STUDIES for e in ("exp1", "exp2")]


def expected_rows(run: Path, models: tuple[str, ...]) -> dict[str, int]:
    """Rows each table must have, from the checkpoints: Exp 1 one per record, Exp 2 one per option scored (a
    failed trial: one)."""
    out = {}
    for s in STUDIES:
        e1 = [r for m in models for r in Checkpoint(run / m / s / "exp1.jsonl", Exp1Record).load(trim=False).values()]
        e2 = [r for m in models for r in Checkpoint(run / m / s / "exp2.jsonl", Exp2Record).load(trim=False).values()]
        out[f"{s}_exp1_all_models"] = len(e1)
        out[f"{s}_exp2_all_models"] = sum(sum(len(q.options) for q in r.questions.values()) or 1 for r in e2)
    return out


def row_counts(analysis: Path, tmp: Path) -> dict[str, dict[str, int]]:
    """Rows per table as pandas, readr (grace_read and a plain read_csv) and the Frictionless validator read them."""
    out = tmp / "rows.json"
    rscript("-e", f"""
        source("{analysis / 'grace.R'}")
        t <- grace_read("{analysis}")
        plain <- sapply(names(t), function(n) nrow(readr::read_csv(file.path("{analysis}", paste0(n, ".csv")),
                                                                    show_col_types = FALSE)))
        jsonlite::write_json(list(grace_read = lapply(t, nrow), read_csv = as.list(plain)), "{out}",
                             auto_unbox = TRUE)""")
    r = json.loads(out.read_text())
    report = validate(str(analysis / "datapackage.json"))
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "message"])[:5]
    return {"pandas": {n: len(pd.read_csv(analysis / f"{n}.csv")) for n in TABLES},
            "parquet": {n: len(pd.read_parquet(analysis / f"{n}.parquet")) for n in TABLES},
            "readr grace_read": r["grace_read"], "readr read_csv": r["read_csv"],
            "frictionless": {t.name: t.stats["rows"] for t in report.tasks}}


@pytest.fixture(scope="module")
def two_model_run(toy_server: Endpoint, gemma2_server: Endpoint, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("two-models") / "run"
    for model, ep in (("toy", toy_server), ("gemma2-tiny", gemma2_server)):
        common = ["--model", model, "--sample", "--endpoint", ep.base_url, "--out", str(out)]
        for study in STUDIES:
            assert main(["query", "--study", study, "--max-tokens", "24", *common]) == 0
            assert main(["score", "--study", study, *common]) == 0
            assert main(["extract", "--study", study, "--stage", str(out / model / study)]) in (0, 1)
    assert main(["compare", str(out), "--no-plots"]) == 0
    assert main(["report", str(out)]) == 0  # the report writes RUN/analysis/
    return out


@pytest.mark.server
def test_two_model_run_leaves_the_tables_the_codebook_and_grace_r(two_model_run: Path, tmp_path: Path) -> None:
    a = two_model_run / "analysis"
    for name in TABLES:
        assert (a / f"{name}.csv").is_file() and (a / f"{name}.parquet").is_file()
    assert (a / "README.md").is_file() and (a / "datapackage.json").is_file() and (a / "grace.R").is_file()
    counts = row_counts(a, tmp_path)
    want = expected_rows(two_model_run, MODELS)
    assert all(c == want for c in counts.values()), counts
    e1 = pd.read_parquet(a / "study2_exp1_all_models.parquet")
    assert list(e1.model_name.unique()) == sorted(MODELS) and len(e1) == 2 * 10
    assert e1.response.notna().all() and e1.extraction_status.notna().all()
    gemma = e1[e1.model_name == "gemma2-tiny"].iloc[0]
    assert (gemma.model_family, gemma.model_dtype, gemma.model_profile, gemma.prompt_version) == \
        ("gemma2", "bfloat16", "local", "study2-exp1-v2+balanced+fold")  # the utterances counterbalanced
    assert (e1.prompt_variant == "main").all() and e1.option_order.str.fullmatch(r"[0-7](\|[0-7]){7}").all()
    e2 = pd.read_parquet(a / "study2_exp2_all_models.parquet")
    assert set(e2.prompt_variant) == {"main", "everyday", "observer"} and (e2[e2.status == "ok"].rotations == 8).all()


@pytest.mark.server
def test_grace_r_equals_compare_json_on_the_two_model_run(two_model_run: Path) -> None:
    python, r = python_figures(two_model_run), grace_r(two_model_run)
    problems = disagreements(python, r)
    assert not problems, "\n".join(problems[:30])
    for model in MODELS:  # Exp 2's figures exist for both (random models: Exp 1 replies are mostly unreadable)
        assert (model, "study2", "exp2", "js", "") in r and (model, "study1", "exp2", "reproduced", "") in r
        assert len([k for k in r if k[0] == model and k[3] == "cell_js"]) >= 1


@pytest.mark.prefect
def test_the_flows_run_leaves_the_analysis_folder(readme_run: SampleRun) -> None:
    rd = readme_run.run_dir
    assert readme_run.flow_run.state.is_completed(), readme_run.flow_run.state.message
    a = rd / "analysis"
    assert sorted(p.name for p in a.glob("*_all_models.csv")) == sorted(f"{n}.csv" for n in TABLES)
    assert validate(str(a / "datapackage.json")).valid
    assert {n: len(pd.read_parquet(a / f"{n}.parquet")) for n in TABLES} == expected_rows(rd, ("smollm2",))
    e2 = pd.read_parquet(a / "study1_exp2_all_models.parquet")
    assert (e2.model_name == "smollm2").all() and (e2.model_profile == "local").all()  # the run's profile (run.json)
    with get_client(sync_client=True) as client:  # the flow's own task, after the report and the comparison
        tasks = {t.name: t.state.name for t in task_runs_of(client, run_tree(client, readme_run.flow_run.id))}
    assert tasks.get("analysis-tables") == "Completed", tasks
