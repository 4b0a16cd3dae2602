"""Extraction of whole tables: the CLI contract, the stage files, and the committed schemas."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
import pandas as pd
import pytest

from grace.cli import main
from grace.compare.outputs import load_study
from grace.extract import extract_stage
from grace.extract.models import schema_for, schema_path
from grace.records import Exp1Record, ExtractedRecord
from grace.studies.registry import get_study

S1_OK = "Initial Answer: 2\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%\nKnowledge: yes\nShe saw them all."
S1_PARTIAL = "Initial Answer: 2\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 20%\nKnowledge: no"


@pytest.mark.parametrize("study", ["study1", "study2"])
def test_committed_schema_matches_models(study: str) -> None:
    assert json.loads(schema_path(study).read_text()) == schema_for(get_study(study))


def test_cli_csv_contract(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    pd.DataFrame({
        "trial_id": ["t3", "t1", "t2", "t1"],
        "response": [S1_OK, "", "I'm sorry, I can't help with that.", S1_PARTIAL],
        "status": ["x", "y", "z", "w"],  # a record field's name: carried under `inputs` like any other column
        "extra": ["a", "b", "c", "d"],
    }).to_csv(src, index=False)
    out = tmp_path / "out.jsonl"
    assert main(["extract", "--study", "study1", "--input", str(src), "--output", str(out)]) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["trial_id"] for r in recs] == ["t3", "t1", "t2", "t1"]  # one per row, same order
    assert [r["status"] for r in recs] == ["ok", "unparseable", "refused", "partial"]
    assert {r["method"] for r in recs} == {"rules"}
    assert [r["inputs"]["extra"] for r in recs] == ["a", "b", "c", "d"]
    assert recs[0]["inputs"]["status"] == "x"
    assert recs[0]["fields"]["initial_answer"] == 2 and recs[0]["fields"]["knowledge"] == "yes"
    assert recs[3]["fields"]["probabilities_sum"] == 80 and recs[3]["fields"]["sums_to_100"] is False
    schema = json.loads(schema_path("study1").read_text())
    for r in recs:
        jsonschema.validate(r, schema)
        assert ExtractedRecord.model_validate(r).study == "study1"  # the extraction stage's own records


def test_cli_jsonl_study2(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    rows = [{"trial_id": "a", "response": "It wasn't bad\nKind and honest.", "replicate": 0},
            {"trial_id": "b", "response": None, "finish_reason": "length"},
            {"trial_id": "c", "response": "Answer: It was amazing", "nested": {"k": [1, 2]}}]
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["extract", "--study", "study2", "--input", str(src), "--output", str(out)]) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["trial_id"], r["fields"]["utterance"], r["status"]) for r in recs] == [
        ("a", "It wasn't bad", "ok"), ("b", None, "unparseable"), ("c", "It was amazing", "ok")]
    assert recs[2]["inputs"]["nested"] == {"k": [1, 2]} and recs[0]["replicate"] == 0
    schema = json.loads(schema_path("study2").read_text())
    for r in recs:
        jsonschema.validate(r, schema)


@pytest.mark.parametrize(("content", "suffix", "message"), [
    ("trial_id,text\na,b\n", ".csv", "no 'response' column"),
    ('{"trial_id": "a", "response": "x"}\nnot json\n', ".jsonl", "line 2: not JSON"),
    ('{"trial_id": "", "response": "x"}\n', ".jsonl", "empty trial_id"),
    ('{"trial_id": "a", "response": 3}\n', ".jsonl", "not text"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str,
                                          suffix: str, message: str) -> None:
    src = tmp_path / f"in{suffix}"
    src.write_text(content)
    assert main(["extract", "--study", "study1", "--input", str(src), "--output", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and str(src) in err and "\n" not in err
    assert not (tmp_path / "o.jsonl").exists()


def test_cli_llm_options_go_together(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_text("trial_id,response\na,It was bad\n")
    assert main(["extract", "--study", "study2", "--input", str(src), "--output", str(tmp_path / "o.jsonl"),
                 "--llm-endpoint", "http://127.0.0.1:9"]) == 2


def _exp1(trial_id: str, response: str | None, status: str = "ok", finish: str = "stop") -> Exp1Record:
    return Exp1Record(trial_id=trial_id, model="m", model_revision="r", study="study1", prompt_version="p",
                      messages=[{"role": "user", "content": "q"}], sampling={}, response=response,
                      finish_reason=finish if response is not None else None, status=status)


def test_extract_stage_writes_records_and_table(tmp_path: Path) -> None:
    recs = [_exp1("s-1", S1_OK), _exp1("s-2", S1_PARTIAL), _exp1("s-3", None, status="error"),
            _exp1("s-4", "Initial Answer: 2\nProbabilities: 0: 10%, 1: 2", finish="length")]
    (tmp_path / "exp1.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in recs))
    pd.DataFrame({"trial_id": ["s-1", "s-2", "s-3", "s-4"], "replicate": [0] * 4, "access": ["3", "2", "1", "3"],
                  "observe": ["1", "2", "1", "3"]}).to_parquet(tmp_path / "exp1.parquet")
    summary = extract_stage(tmp_path, get_study("study1"))
    lines = (tmp_path / "extracted.jsonl").read_text().splitlines()
    out = [ExtractedRecord.model_validate_json(x) for x in lines]
    assert [r.trial_id for r in out] == ["s-1", "s-2", "s-3", "s-4"]
    assert [r.status for r in out] == ["ok", "partial", "unparseable", "partial"]
    assert "Exp 1 request failed" in out[2].fields["notes"][0]
    assert "reply truncated by max_tokens" in out[3].fields["notes"]
    assert summary.status == {"ok": 1, "partial": 2, "unparseable": 1} and summary.total == 4
    table = pd.read_parquet(tmp_path / "extracted.parquet")
    assert list(table["access"]) == ["3", "2", "1", "3"]
    assert table.loc[0, "p3"] == pytest.approx(0.4)
    assert (tmp_path / "extracted.csv").exists()
    (tmp_path / "extracted.jsonl").unlink()
    assert main(["extract", "--study", "study1", "--stage", str(tmp_path)]) == 0  # the run-folder form
    assert len((tmp_path / "extracted.jsonl").read_text().splitlines()) == 4
    assert main(["extract", "--study", "study1", "--stage", str(tmp_path), "--input", "x.csv"]) == 2
    assert main(["extract", "--study", "study1", "--stage", str(tmp_path / "nope")]) == 2


def test_extraction_of_a_study_without_rules(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no extraction rules for study 'study1'"):
        extract_stage(tmp_path, dataclasses.replace(get_study("study1"), extraction=None))


def test_the_input_form_writes_what_the_comparison_reads(tmp_path: Path) -> None:
    """One extracted-record format: `grace extract --input` output dropped into a run folder is read as the stage's."""
    src = tmp_path / "in.csv"
    src.write_text("trial_id,response,model\n"
                   "study2-row00001,It was amazing,my-model\nstudy2-row00002,No idea,my-model\n")
    folder = tmp_path / "run" / "my-model" / "study2"
    folder.mkdir(parents=True)
    assert main(["extract", "--study", "study2", "--input", str(src), "--output", str(folder / "extracted.jsonl")]) == 0
    out = load_study(folder, get_study("study2"), None)
    assert out.model == "my-model" and out.exp1_present
    assert [(r["trial_id"], r["utterance"], r["status"]) for r in out.extracted] == [
        ("study2-row00001", "It was amazing", "ok"), ("study2-row00002", None, "unparseable")]
