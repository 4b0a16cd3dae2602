"""A new study is one plug-in: a small third study, defined in this file alone, runs through query, score,
extract, report and compare on the toy model, with no other file of Grace changed.

"colours": a listener is told an object's colour and names it (Exp 1), or the three colour words are scored
(Exp 2). Its own columns and validation, a CSV it writes, its prompts and options (the colour words a permutable
list: counterbalanced in Exp 1, every rotation scored in Exp 2), its rules, schema and LLM task, a check of its
answers and a plot; no human comparison (`comparison=None`).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import jsonschema
import matplotlib.pyplot as plt
import pandas as pd
import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from grace.cli import main
from grace.errors import ConfigError
from grace.extract import STATUSES, AnswerFields, Extraction
from grace.extract.models import schema_for
from grace.extract.text import RuleResult, decide_status, leftover_reasoning, normalise
from grace.records import ExtractedRecord
from grace.report.checks import StageChecks
from grace.report.load import StageData
from grace.report.plots import save
from grace.report.plugin import ReportPart, extracted_frame
from grace.serving import Endpoint
from grace.studies import (
    AS_WRITTEN,
    STUDIES,
    Layout,
    Messages,
    Question,
    Study,
    Trial,
    get_study,
    register_study,
    unregister_study,
)
from tests.conftest import ROOT

# --- the plug-in ---------------------------------------------------------------------------------------

Colour = Literal["red", "green", "blue"]
COLOURS: tuple[str, ...] = get_args(Colour)
_COLOUR_WORD = re.compile(r"\b(red|green|blue)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Colours(Study):
    name: str = "colours"
    required_columns: tuple[str, ...] = ("object", "colour", "lighting")
    optional_columns: tuple[str, ...] = ("item",)
    key_columns: tuple[str, ...] = ("item",)
    condition_columns: tuple[str, ...] = ("lighting",)
    prompt_version: str = "colours-exp1-v1"
    exp2_prompt_version: str = "colours-exp2-v1"
    permutable: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: {"colour": COLOURS})

    def check_row(self, row: Trial) -> str | None:
        if row["colour"].strip() not in COLOURS:
            return f"column 'colour': {row['colour']!r} is not red, green or blue"
        return None

    def condition(self, trial: Trial) -> dict[str, str]:
        return {"lighting": trial.get("lighting", "").strip()}

    def _scene(self, trial: Trial) -> str:
        return f"In {trial['lighting'].strip()} light you see a {trial['colour'].strip()} {trial['object'].strip()}."

    def exp1_messages(self, trial: Trial, layout: Layout = AS_WRITTEN) -> Messages:
        words = ", ".join(layout.order("colour", COLOURS))
        return [{"role": "system", "content": "Name colours."},
                {"role": "user", "content": f"{self._scene(trial)} What colour is it ({words})? Reply with one word."}]

    def exp2_questions(self, trial: Trial, layout: Layout = AS_WRITTEN) -> list[Question]:
        order = layout.order("colour", COLOURS)
        msgs = [{"role": "system", "content": "Name colours."},
                {"role": "user", "content": f"{self._scene(trial)} Answer with one of: {', '.join(order)}."}]
        return [Question("colour", msgs, order, order_of="colour")]


class ColourFields(AnswerFields):
    """Colours: the colour named."""

    colour: Colour | None = Field(None, description="the colour named")


class LLMColour(BaseModel):
    model_config = ConfigDict(extra="forbid")
    colour: Colour | None = None


def read_colour(response: str | None, finish_reason: str | None = None) -> RuleResult:
    """The one colour word the reply names; several or none leave it empty."""
    text = normalise(response or "")
    named = sorted({m.group(1).lower() for m in _COLOUR_WORD.finditer(text)})
    colour = named[0] if len(named) == 1 else None
    notes = [f"colour: several named ({', '.join(named)})"] if len(named) > 1 else []
    fields = {"colour": colour, "notes": notes,
              "reasoning": leftover_reasoning(text, lambda line: bool(_COLOUR_WORD.search(line)))}
    status = decide_status(int(colour is not None), 1, bool(notes), text)
    return RuleResult(fields, status, [] if colour or notes else ["colour"], notes, bool(notes))


class ColourExtraction(Extraction):
    fields = ColourFields
    answer_fields = ("colour",)
    llm_answer = LLMColour
    llm_task = "The participant was asked the colour of an object: red, green or blue. Give the one named."
    llm_regex = r'\{"colour":(null|"red"|"green"|"blue")\}'

    def rules(self, response: str | None, finish_reason: str | None = None) -> RuleResult:
        return read_colour(response, finish_reason)


class ColourReport(ReportPart):
    agreement = (("colour", "colour"),)

    def check_extracted(self, sc: StageChecks, records: list[ExtractedRecord]) -> None:
        named = sum(r.fields.get("colour") is not None for r in records)
        sc.add("extracted", "colour named", True, f"{named} of {len(records)} replies name one colour", fatal=False)
        sc.metrics["extracted"]["colours_named"] = named

    def stage_plots(self, data: StageData, label: str, out_dir: Path, stem: str) -> list[Path]:
        frame = extracted_frame(data, lambda f: {"colour": f.get("colour")}, ("colour",))
        counts = frame["colour"].fillna("none").value_counts()
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.bar(list(counts.index), list(counts.values))
        ax.set_title(f"{label}: colours named")
        return [save(fig, out_dir / f"{stem}_colours.png")]

    # compare_plot stays the default: no plot of the models side by side


STUDY = Colours(extraction=ColourExtraction(), report=ColourReport(), comparison=None)
ROWS = [("a1", "apple", "red", "day"), ("a2", "leaf", "green", "day"), ("a3", "sky", "blue", "night"),
        ("a4", "cherry", "red", "night")]


@pytest.fixture()
def colours() -> Iterator[Study]:
    register_study(STUDY)
    try:
        yield STUDY
    finally:
        unregister_study(STUDY.name)


@pytest.fixture()
def stimuli(tmp_path: Path) -> Path:
    path = tmp_path / "colours.csv"
    path.write_text("item,object,colour,lighting\n" + "".join(",".join(r) + "\n" for r in ROWS), encoding="utf-8")
    return path


@pytest.fixture()
def config_dir(tmp_path: Path, stimuli: Path) -> Path:
    """The project's models, and experiments for this study alone (short answers, one replicate)."""
    d = tmp_path / "config"
    d.mkdir()
    shutil.copy(ROOT / "config" / "models.yaml", d / "models.yaml")
    retry = {"attempts": 2, "backoff_initial_s": 0.1, "backoff_max_s": 0.5, "request_timeout_s": 60}
    exp = {"studies": {"colours": {"input": str(stimuli), "sample": str(stimuli)}},
           "experiments": [
               {"study": "colours", "experiment": "exp1", "retry": retry,
                "sampling": {"temperature": 0.7, "max_tokens": 12, "replications": 1, "seed": 1}},
               {"study": "colours", "experiment": "exp2", "retry": retry, "concurrency": 4}]}
    (d / "experiments.yaml").write_text(yaml.safe_dump(exp, sort_keys=False))
    return d


# --- without a server: registration, validation, schema ------------------------------------------------

def test_a_registered_study_is_known_and_validates_its_rows(colours: Study, stimuli: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert get_study("colours") is colours and list(STUDIES)[-1] == "colours"
    with pytest.raises(ConfigError, match="already registered"):
        register_study(STUDY)
    assert main(["check-data", "--study", "colours", str(stimuli)]) == 0
    assert "4 colours trials" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("item,object,colour,lighting\nb1,apple,purple,day\n")
    assert main(["check-data", "--study", "colours", str(bad)]) == 2
    assert "row 1, column 'colour': 'purple' is not red, green or blue" in capsys.readouterr().err
    schema = schema_for("colours")
    assert schema["$id"].endswith("/colours.json") and schema["properties"]["colour"]["anyOf"][0]["enum"] == \
        list(COLOURS)
    assert read_colour("It is red.").fields["colour"] == "red" and read_colour("It is red.").status == "ok"
    assert read_colour("red or blue").fields["colour"] is None and read_colour("red or blue").missing == []


def test_registration_is_undone() -> None:
    assert "colours" not in STUDIES
    with pytest.raises(ConfigError, match="unknown study 'colours'"):
        get_study("colours")


# --- on the toy model: every stage -------------------------------------------------------------------

def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.mark.server
def test_the_third_study_runs_through_every_stage(colours: Study, stimuli: Path, config_dir: Path,
                                                  toy_server: Endpoint, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    common = ["--model", "toy", "--study", "colours", "--input", str(stimuli), "--endpoint", toy_server.base_url,
              "--out", str(run), "--config-dir", str(config_dir)]
    for verb in ("query", "score"):
        assert main([verb, *common]) == 0, capsys.readouterr()
    stage = run / "toy" / "colours"
    trials = {t["trial_id"]: t for t in colours.load(stimuli)}
    assert set(trials) == {"colours-a1", "colours-a2", "colours-a3", "colours-a4"}

    exp1 = _lines(stage / "exp1.jsonl")
    assert {r["trial_id"] for r in exp1} == set(trials)
    assert {r["study"] for r in exp1} == {"colours"}
    assert {r["prompt_version"] for r in exp1} == {"colours-exp1-v1+balanced"}, "its options counterbalanced"
    for r in exp1:
        assert r["messages"][-1]["content"].startswith(f"In {trials[r['trial_id']]['lighting']} light you see a")
        order = r["option_order"]["colour"]
        assert sorted(order) == sorted(COLOURS) and f"({', '.join(order)})" in r["messages"][-1]["content"]
    assert set(pd.read_parquet(stage / "exp1.parquet")["lighting"]) == {"day", "night"}
    exp2 = _lines(stage / "exp2.jsonl")
    assert {r["trial_id"] for r in exp2} == set(trials)
    for r in exp2:
        q = r["questions"]["colour"]
        assert r["status"] == "ok" and q["options"] == list(COLOURS) and q["pooled_over"] == 3
        assert r["prompt_version"] == "colours-exp2-v1+circular"
        assert sum(q["probs"].values()) == pytest.approx(1.0) and q["argmax"] in COLOURS
        rotated = [x["options"] for x in r["rotations"]["colour"]]  # every rotation: each colour in each place once
        assert len(rotated) == 3 and all(sorted(col) == sorted(COLOURS) for col in zip(*rotated, strict=True))
        assert q["probs"]["red"] == pytest.approx(sum(x["probs"]["red"] for x in r["rotations"]["colour"]) / 3)

    assert main(["extract", "--study", "colours", "--stage", str(stage), "--llm-endpoint", toy_server.base_url,
                 "--llm-model", toy_server.model]) == 0, capsys.readouterr()
    extracted = _lines(stage / "extracted.jsonl")
    assert [(r["trial_id"], r["replicate"]) for r in extracted] == [(r["trial_id"], r["replicate"]) for r in exp1]
    schema = schema_for("colours")
    table = pd.read_csv(stage / "extracted.csv")
    for rec, reply, row in zip(extracted, exp1, table.to_dict("records"), strict=True):
        ruled = read_colour(reply["response"], reply["finish_reason"])
        assert row["rules_status"] == ruled.status, "the study's own rules read the reply"
        assert rec["status"] in STATUSES and rec["method"] in ("rules", "llm")
        assert set(rec["fields"]) == set(ColourFields.model_fields)
        jsonschema.validate({"trial_id": rec["trial_id"], "status": rec["status"], "method": rec["method"],
                             **rec["fields"]}, schema)
        asked = bool(ruled.missing) and ruled.status != "refused" and bool(reply["response"])
        assert rec["extraction_model"] == (toy_server.model if asked else None)
        if rec["method"] == "llm":  # a value the LLM gave is kept only where the reply names it
            assert re.search(rf"\b{rec['fields']['colour']}\b", reply["response"], re.IGNORECASE)
    assert set(table["lighting"]) == {"day", "night"}, "the design cell joined from the Exp 1 table"

    assert main(["report", str(run)]) == 0, capsys.readouterr()
    report = json.loads((run / "report" / "report.json").read_text())
    mine = report["models"]["toy"]["colours"]
    checks = {(c["experiment"], c["name"]) for c in mine["checks"]}
    assert {("exp1", "row count"), ("exp2", "probabilities"), ("extracted", "parse rate"),
            ("extracted", "colour named")} <= checks
    assert ("extracted", "probabilities") not in checks, "study 1's check of its bets is study 1's alone"
    assert mine["metrics"]["extracted"]["colours_named"] == sum(r["fields"]["colour"] is not None for r in extracted)
    assert set(mine["metrics"]["agreement"]) == {"colour~colour"}
    assert mine["metrics"]["agreement"]["colour~colour"]["pairs"] == sum(
        r["fields"]["colour"] is not None for r in extracted)
    assert mine["plots"] == ["toy_colours_colours.png"] and (run / "report" / "toy_colours_colours.png").is_file()
    assert "parse_status.png" in report["plots"] and not (run / "report" / "compare_colours.png").exists()
    assert "## toy / colours:" in (run / "report" / "report.md").read_text()

    assert main(["compare", str(run), "--bootstrap", "10", "--config-dir", str(config_dir)]) == 0
    compared = json.loads((run / "compare" / "compare.json").read_text())
    assert compared["ranking"] == [] and "colours" not in compared
    assert "toy/colours: this study has no human comparison" in compared["notes"]
