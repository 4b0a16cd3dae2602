"""The all-models tables and their codebook, on run folders laid out as a served run leaves them (no server): the
declared columns in order, the stimulus columns as the input CSV names them, one row per record, CSV and Parquet
alike, awkward replies read back exactly, the Frictionless validator, model metadata, the command line."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from frictionless import validate

from grace.analysis import write_analysis
from grace.analysis.columns import TABLES, Column
from grace.analysis.figures import disagreements
from grace.analysis.sources import Trials
from grace.analysis.study_columns import extracted_columns, infer_type, study_columns
from grace.checkpoint import Checkpoint, write_json_atomic
from grace.cli import main
from grace.config import Config, load_config
from grace.records import Exp1Record, Exp2Record
from grace.studies.registry import STUDIES, get_study
from tests.support.analysis_run import AWKWARD, made_run

ROOT = Path(__file__).resolve().parent.parent
STUDY1, STUDY2 = get_study("study1"), get_study("study2")
MODELS = ("toy", "gemma2-tiny")
TABLE_NAMES = [f"{s}_{e}_all_models" for s in ("study1", "study2") for e in ("exp1", "exp2")]


@pytest.fixture(scope="module")
def cfg() -> Config:
    return load_config(ROOT / "config")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, cfg: Config) -> Path:
    inputs = {STUDY1: STUDY1.load(ROOT / "data" / "study1.csv", limit=30),
              STUDY2: STUDY2.load(ROOT / "data" / "study2.csv", limit=36)}
    return made_run(tmp_path_factory.mktemp("analysis") / "run", cfg, inputs, MODELS)


def header(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as f:
        return next(csv.reader(f))


def records(run: Path, study: str, kind: str) -> list:
    rtype = Exp1Record if kind == "exp1" else Exp2Record
    return [r for m in MODELS for r in Checkpoint(run / m / study / f"{kind}.jsonl", rtype).load(trim=False).values()]


def test_the_run_leaves_four_tables_the_codebook_and_grace_r(run: Path) -> None:
    a = run / "analysis"
    for name in TABLE_NAMES:
        assert (a / f"{name}.csv").is_file() and (a / f"{name}.parquet").is_file()
    assert (a / "grace.R").read_text() == (ROOT / "analysis" / "grace.R").read_text()
    readme = (a / "README.md").read_text()
    assert readme.startswith((ROOT / "analysis" / "README.md").read_text())
    assert "### `study1_exp1_all_models.csv` (120 rows)" in readme  # 2 models x 30 trials x 2 replicates
    # the human files compare.json names as read (study 2's published findings and noise ceiling among them)
    assert sorted(p.name for p in (a / "human").iterdir()) == ["study1_findings.csv", "study1_knowledgeability.csv",
                                                              "study2_ceiling.csv", "study2_findings.csv",
                                                              "study2_production.csv"]


def test_columns_are_the_declared_ones_in_order_with_the_inputs_own_names(run: Path) -> None:
    for study, path in ((STUDY1, "study1.csv"), (STUDY2, "study2.csv")):
        input_header = header(ROOT / "data" / path)
        for exp in ("exp1", "exp2"):
            cols = header(run / "analysis" / f"{study.name}_{exp}_all_models.csv")
            fixed = [c.name for c in TABLES[exp] if isinstance(c, Column)]
            assert [c for c in cols if c not in fixed][: len(input_header)] == input_header  # the file's order
            start = cols.index(input_header[0])
            assert cols[start - 1] == ("replicate" if exp == "exp1" else "trial_id")
            assert cols[:8] == ["model_name", "model_family", "model_parameters_b", "model_quantization",
                                "model_dtype", "model_profile", "model_variant_of", "model_revision"]
        if study is STUDY2:  # the design cell beside the lab's own Goal and State
            assert cols[start + len(input_header): start + len(input_header) + 2] == ["goal", "state"]
    e1 = header(run / "analysis" / "study1_exp1_all_models.csv")
    assert e1[e1.index("response"):e1.index("response") + 2] == ["response", "status"]
    assert e1[-10:] == ["initial_answer", "p0", "p1", "p2", "p3", "probabilities_unit", "probabilities_sum",
                        "sums_to_100", "knowledge", "extraction_notes"]
    assert header(run / "analysis" / "study2_exp1_all_models.csv")[-4:] == ["utterance", "polarity", "quality",
                                                                           "extraction_notes"]


def test_one_row_per_record_and_a_failed_trial_keeps_its_row(run: Path) -> None:
    for study in ("study1", "study2"):
        e1 = pd.read_parquet(run / "analysis" / f"{study}_exp1_all_models.parquet")
        assert len(e1) == len(records(run, study, "exp1"))
        assert not e1.duplicated(["model_name", "trial_id", "replicate"]).any()
        e2 = pd.read_parquet(run / "analysis" / f"{study}_exp2_all_models.parquet")
        recs = records(run, study, "exp2")
        assert len(e2) == sum(sum(len(q.options) for q in r.questions.values()) or 1 for r in recs)
        failed = e2[e2.status != "ok"]
        assert len(failed) == len(MODELS) and failed.question.isna().all() and (failed.error == "prompt too long").all()
        ok = e2[e2.status == "ok"]
        sums = ok.groupby(["model_name", "trial_id", "question"]).prob.sum()
        assert np.allclose(sums, 1.0)
        assert np.allclose(ok.prob_raw, np.exp(ok.logprob))
        assert (ok.groupby(["model_name", "trial_id", "question"]).is_argmax.sum() == 1).all()
    e1 = pd.read_parquet(run / "analysis" / "study1_exp1_all_models.parquet")
    assert list(e1.model_name.unique()) == sorted(MODELS)  # no run.json: the folders' order
    assert e1.extraction_status.notna().all() and set(e1.extraction_status) >= {"ok", "unparseable"}


def test_csv_and_parquet_hold_the_same_rows_and_values(run: Path) -> None:
    for name in TABLE_NAMES:
        pq = pd.read_parquet(run / "analysis" / f"{name}.parquet")
        cs = pd.read_csv(run / "analysis" / f"{name}.csv", keep_default_na=False, na_values=[""])
        assert list(cs.columns) == list(pq.columns) and len(cs) == len(pq)
        for col in pq.columns:
            kind = str(pq[col].dtype)
            if kind in ("Int64", "Float64"):
                assert np.allclose(cs[col].astype(float), pq[col].astype(float), equal_nan=True, rtol=0, atol=0), col
            elif kind == "boolean":
                assert cs[col].map({True: True, False: False}).equals(pq[col].astype(object).where(pq[col].notna())
                                                                      .map({True: True, False: False})), col
            else:
                assert cs[col].astype(object).where(cs[col].notna(), None).tolist() == \
                    pq[col].astype(object).where(pq[col].notna(), None).tolist(), col


def test_the_csv_is_r_friendly_and_replies_read_back_exactly(run: Path) -> None:
    path = run / "analysis" / "study1_exp1_all_models.csv"
    text = path.read_bytes().decode("utf-8")  # UTF-8, no byte-order mark
    assert not text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    head, body = rows[0], rows[1:]
    assert head.count("model_name") == 1 and all(r != head for r in body)  # one header row
    cells = {v for r in body for v in r}
    assert not cells & {"None", "nan", "NaN", "<NA>", "True", "False", "null"}
    for col in ("sums_to_100",):
        assert {r[head.index(col)] for r in body} <= {"TRUE", "FALSE", ""}
    for col in ("replicate", "prompt_tokens", "access", "participant_id"):  # whole numbers as numbers
        assert all(re.fullmatch(r"-?\d+", r[head.index(col)]) for r in body), col
    sent = {(r.model, r.trial_id, r.replicate): r.response for r in records(run, "study1", "exp1")}
    got = {(r[0], r[head.index("trial_id")], int(r[head.index("replicate")])): r[head.index("response")]
           for r in body}
    assert got == {k: v or "" for k, v in sent.items()}  # newlines, \r\n, quotes, commas, spaces, "NA", unicode
    awkward = [a for a in AWKWARD if a.strip()]
    assert all(any(a in v for v in got.values()) for a in awkward)


def test_frictionless_validates_the_package_with_pandas_row_counts(run: Path) -> None:
    report = validate(str(run / "analysis" / "datapackage.json"))
    assert report.valid, report.flatten(["rowNumber", "fieldName", "type", "message"])[:5]
    rows = {t.name: t.stats["rows"] for t in report.tasks}
    assert rows == {n: len(pd.read_csv(run / "analysis" / f"{n}.csv")) for n in TABLE_NAMES}
    pkg = json.loads((run / "analysis" / "datapackage.json").read_text())
    for res in pkg["resources"]:
        assert [f["name"] for f in res["schema"]["fields"]] == header(run / "analysis" / res["path"])
        assert all(f["description"] for f in res["schema"]["fields"])
    fields = {f["name"]: f for f in pkg["resources"][0]["schema"]["fields"]}
    assert fields["status"]["constraints"]["enum"] == ["ok", "error", "empty", "truncated", "reasoning_truncated"]
    assert fields["model_parameters_b"]["unit"] == "billions" and fields["latency_s"]["type"] == "number"


def test_frictionless_finds_a_table_that_breaks_its_codebook(run: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(run / "analysis", tmp_path / "analysis")
    path = copy / "study1_exp1_all_models.csv"
    path.write_text(path.read_text(encoding="utf-8").replace(",TRUE,", ",perhaps,", 1), encoding="utf-8")
    report = validate(str(copy / "datapackage.json"))
    errors = {e.type for t in report.tasks for e in t.errors}
    assert not report.valid and {"type-error", "hash-count"} <= errors


def test_model_metadata_from_the_config_and_the_runs_profile(run: Path) -> None:
    e2 = pd.read_parquet(run / "analysis" / "study2_exp2_all_models.parquet")
    toy = e2[e2.model_name == "toy"].iloc[0]
    assert (toy.model_family, toy.model_parameters_b, toy.model_quantization, toy.model_dtype, toy.model_profile) == \
        ("llama", 0.0066, "none", "float32", "local")
    assert toy.model_revision == "random-seed-0" and pd.isna(toy.model_variant_of)
    assert e2[e2.model_name == "gemma2-tiny"].model_dtype.unique().tolist() == ["bfloat16"]


def test_a_model_not_in_the_config_keeps_empty_metadata_and_a_note(tmp_path: Path, cfg: Config) -> None:
    run = made_run(tmp_path / "run", cfg, {STUDY2: STUDY2.load(ROOT / "data" / "study2_sample.csv")},
                   ("lab-model",))
    write_json_atomic(run / "run.json", {"params": {"models": ["lab-model"], "profile": "a100"}})
    summary = write_analysis(run, STUDIES.values())
    assert any("lab-model: not in config/models.yaml" in n for n in summary.notes)
    e1 = pd.read_parquet(run / "analysis" / "study2_exp1_all_models.parquet")
    assert e1.model_family.isna().all() and e1.model_parameters_b.isna().all()
    assert (e1.model_profile == "a100").all()  # the run's profile, from run.json
    assert "lab-model: not in config/models.yaml" in (run / "analysis" / "README.md").read_text()


def test_a_labs_own_csv_keeps_its_columns_order_and_names(tmp_path: Path, cfg: Config) -> None:
    """The lab's forms: columns in another order, extra columns (with quotes), Goal in the lab's wording; a
    column named like one of Grace's (`status`) is kept as input_status."""
    src = pd.read_csv(ROOT / "tests" / "lab_forms" / "study1_lab.csv", dtype=str, keep_default_na=False)
    src.insert(3, "status", "piloted")
    lab1 = tmp_path / "study1_lab.csv"
    src.to_csv(lab1, index=False)
    inputs = {STUDY1: STUDY1.load(lab1), STUDY2: STUDY2.load(ROOT / "tests" / "lab_forms" / "study2_lab.csv")}
    run = made_run(tmp_path / "run", cfg, inputs, ("toy",))
    cols = header(run / "analysis" / "study1_exp1_all_models.csv")
    lab_cols = [("input_status" if c == "status" else c) for c in header(lab1)]
    start = cols.index(lab_cols[0])
    assert cols[start:start + len(lab_cols)] == lab_cols
    e2 = pd.read_parquet(run / "analysis" / "study2_exp1_all_models.parquet")
    lab2 = pd.read_csv(ROOT / "tests" / "lab_forms" / "study2_lab.csv", dtype=str, keep_default_na=False)
    at = list(e2.columns).index("replicate") + 1
    assert list(e2.columns[at:at + len(lab2.columns)]) == list(lab2.columns)
    assert e2.Notes.iloc[0] == lab2.Notes.iloc[0] and '"hearts"' in e2.Notes.iloc[0]
    assert (e2.groupby("trial_id").goal.first().sort_index() ==
            lab2.assign(trial_id=[t["trial_id"] for t in inputs[STUDY2]]).set_index("trial_id").expected_goal
            .sort_index()).all()  # the lab's wording read by meaning
    assert (pd.read_parquet(run / "analysis" / "study1_exp1_all_models.parquet").input_status == "piloted").all()
    stage = pd.read_parquet(run / "toy" / "study1" / "exp1.parquet")  # the stage table no longer overwrites it
    assert (stage.input_status == "piloted").all() and set(stage.status) <= {"ok", "empty"}
    assert validate(str(run / "analysis" / "datapackage.json")).valid


def test_rewriting_removes_a_table_no_longer_made(tmp_path: Path, cfg: Config) -> None:
    run = made_run(tmp_path / "run", cfg, {STUDY2: STUDY2.load(ROOT / "data" / "study2_sample.csv")}, ("toy",))
    assert (run / "analysis" / "study2_exp2_all_models.csv").exists()
    for p in (run / "toy" / "study2").glob("exp2.*"):
        p.unlink()
    summary = write_analysis(run, STUDIES.values())
    assert list(summary.tables) == ["study2_exp1_all_models"]
    assert not list((run / "analysis").glob("study2_exp2_*"))
    pkg = json.loads((run / "analysis" / "datapackage.json").read_text())
    assert [r["name"] for r in pkg["resources"]] == ["study2_exp1_all_models"]


def test_grace_report_writes_the_tables(tmp_path: Path, cfg: Config, capsys: pytest.CaptureFixture[str]) -> None:
    run = made_run(tmp_path / "run", cfg, {STUDY2: STUDY2.load(ROOT / "data" / "study2_sample.csv")}, ("toy",))
    shutil.rmtree(run / "analysis")
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"analysis tables in {run / 'analysis'}: study2_exp1_all_models (20 rows), study2_exp2_all_models" in out
    assert (run / "analysis" / "datapackage.json").exists() and (run / "analysis" / "grace.R").exists()


def test_extracted_columns_come_from_each_studys_schema() -> None:
    s1 = {c.name: c for c in extracted_columns(STUDY1)}
    assert list(s1) == ["initial_answer", "p0", "p1", "p2", "p3", "probabilities_unit", "probabilities_sum",
                        "sums_to_100", "knowledge", "extraction_notes"]
    assert s1["p2"].type == "number" and "for 2" in s1["p2"].description and s1["knowledge"].enum == ("yes", "no")
    assert s1["initial_answer"].type == "integer" and s1["sums_to_100"].type == "boolean"
    assert [c.name for c in extracted_columns(STUDY2)] == ["utterance", "polarity", "quality", "extraction_notes"]


def test_stimulus_types_follow_every_value() -> None:
    assert infer_type(["1", "2", ""]) == "integer"
    assert infer_type(["1", "007"]) == "string"  # an id with leading zeros stays text
    assert infer_type(["1.5", "2"]) == "number"
    assert infer_type(["", " "]) == "string"
    trials = Trials(["access", "Goal"], {"t": {"access": "3", "Goal": "x", "trial_id": "t"}})
    own = study_columns(STUDY1, trials)
    assert [(c.name, c.type) for c in own.stimulus] == [("access", "integer"), ("Goal", "string")]
    assert [c.name for c in own.design] == ["observe"]  # access is already a stimulus column


def test_the_shipped_codebook_names_every_fixed_column() -> None:
    text = (ROOT / "analysis" / "README.md").read_text()
    fixed = {c.name for cols in TABLES.values() for c in cols if isinstance(c, Column)}
    fixed |= {c.name for s in (STUDY1, STUDY2) for c in extracted_columns(s)}
    missing = sorted(n for n in fixed if f"`{n}`" not in text)
    assert not missing, f"analysis/README.md does not describe: {missing}"


def test_disagreements_name_what_differs_or_is_missing() -> None:
    py = {("m", "study2", "exp2", "js", ""): 0.25, ("m", "study2", "exp2", "r", ""): 0.5}
    assert disagreements(py, dict(py)) == []
    assert disagreements(py, {**py, ("m", "study2", "exp2", "js", ""): 0.25 + 5e-7}) == []
    out = disagreements(py, {("m", "study2", "exp2", "js", ""): 0.2501, ("m", "study2", "exp1", "js", ""): 0.1})
    assert len(out) == 3 and "only in Grace's JSON" in out[0] and "only in grace.R's" in out[1] and "0.2501" in out[2]
