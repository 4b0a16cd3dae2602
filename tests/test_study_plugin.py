"""A new study is one plug-in: a small third study, defined in this file alone, runs through query, score,
extract, report and compare on the toy model, with no other file of Grace changed.

"colours": a listener is told an object's colour and names it (Exp 1), or the three colour words are scored
(Exp 2). Its own columns and validation, a CSV it writes, its prompts and options, its rules, schema and LLM
task, a check of its answers and a plot; no human comparison (`comparison=None`).

The stages are handed the `Study` object, so running it needs no registration; a name for the command line
comes from an entry point in the group `grace.studies` (any process that can import the package knows it) or
from `register_study` (this process only), both tried in a process of their own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import jsonschema
import matplotlib.pyplot as plt
import pandas as pd
import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from grace.compare.report import compare_run
from grace.config import load_config
from grace.extract import STATUSES, AnswerFields, Extraction, extract_stage
from grace.extract.models import schema_for
from grace.extract.text import RuleResult, decide_status, leftover_reasoning, normalise
from grace.query import run_exp1_sync
from grace.records import ExtractedRecord
from grace.report.build import build_report
from grace.report.checks import StudyChecks
from grace.report.load import StudyData
from grace.report.plots import save
from grace.report.plugin import ReportPart, extracted_frame
from grace.run import RunFolder
from grace.scoring import run_exp2_sync
from grace.serving import Endpoint
from grace.studies import Messages, Question, Study, Trial
from grace.studies.registry import STUDIES
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

    def check_row(self, row: Trial) -> str | None:
        if row["colour"].strip() not in COLOURS:
            return f"column 'colour': {row['colour']!r} is not red, green or blue"
        return None

    def condition(self, trial: Trial) -> dict[str, str]:
        return {"lighting": trial.get("lighting", "").strip()}

    def _scene(self, trial: Trial) -> str:
        return f"In {trial['lighting'].strip()} light you see a {trial['colour'].strip()} {trial['object'].strip()}."

    def exp1_messages(self, trial: Trial) -> Messages:
        return [{"role": "system", "content": "Name colours."},
                {"role": "user", "content": f"{self._scene(trial)} What colour is it? Reply with one word."}]

    def exp2_questions(self, trial: Trial) -> list[Question]:
        msgs = [{"role": "system", "content": "Name colours."},
                {"role": "user", "content": f"{self._scene(trial)} Answer with one of: red, green, blue."}]
        return [Question("colour", msgs, COLOURS)]


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

    def check_extracted(self, sc: StudyChecks, records: list[ExtractedRecord]) -> None:
        named = sum(r.fields.get("colour") is not None for r in records)
        sc.add("extracted", "colour named", True, f"{named} of {len(records)} replies name one colour", fatal=False)
        sc.metrics["extracted"]["colours_named"] = named

    def study_plots(self, data: StudyData, label: str, out_dir: Path, stem: str) -> list[Path]:
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


# --- without a server: names, validation, schema -------------------------------------------------------

def _grace(args: list[str], code: str = "", path: list[Path] | None = None) -> subprocess.CompletedProcess[str]:
    """`grace ARGS` in a process of its own, after `code` (with sys.path extended by `path`)."""
    script = f"import sys\n{code}\nfrom grace.cli import main\nsys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in [*(path or []), ROOT])}
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env=env)


def _entry_point(folder: Path, value: str = "tests.test_study_plugin:STUDY") -> Path:
    """A package's metadata declaring the study in the entry-point group `grace.studies` (what `pip install`
    writes from `[project.entry-points."grace.studies"]`), on a folder of its own."""
    info = folder / "grace_colours-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: grace-colours\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[grace.studies]\ncolours = {value}\n")
    return folder


def test_a_study_named_by_an_entry_point_is_known_in_any_process(stimuli: Path, tmp_path: Path) -> None:
    """What a worker's flow-run process sees: the installed package's entry point, no registration in code."""
    site = _entry_point(tmp_path / "site")
    ok = _grace(["check-data", "--study", "colours", str(stimuli)], path=[site])
    assert ok.returncode == 0 and "4 colours trials" in ok.stdout, ok.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("item,object,colour,lighting\nb1,apple,purple,day\n")
    refused = _grace(["check-data", "--study", "colours", str(bad)], path=[site])
    assert refused.returncode == 2
    assert "row 1, column 'colour': 'purple' is not red, green or blue" in refused.stderr
    broken = _grace(["check-data", "--study", "colours", str(stimuli)],
                    path=[_entry_point(tmp_path / "broken", "tests.test_study_plugin:ROWS")])
    assert broken.returncode == 2 and "study plug-in 'colours'" in broken.stderr and "not a Study" in broken.stderr
    assert "colours" not in STUDIES, "nothing registered in this process"


def test_register_study_names_it_in_this_process_only(stimuli: Path) -> None:
    code = ("from grace.studies.registry import STUDIES, get_study, register_study\n"
            "from grace.errors import ConfigError\n"
            "from tests.test_study_plugin import STUDY\n"
            "assert register_study(STUDY) is STUDY and get_study('colours') is STUDY\n"
            "assert list(STUDIES)[-1] == 'colours'\n"
            "try:\n    register_study(STUDY)\nexcept ConfigError as e:\n    assert 'already registered' in str(e)\n"
            "else:\n    raise AssertionError('registered twice')\n")
    done = _grace(["check-data", "--study", "colours", str(stimuli)], code)
    assert done.returncode == 0 and "4 colours trials" in done.stdout, done.stderr
    unknown = _grace(["check-data", "--study", "colours", str(stimuli)])
    assert unknown.returncode == 2 and "unknown study 'colours'" in unknown.stderr


def test_the_study_validates_its_rows_and_has_its_schema(stimuli: Path) -> None:
    assert [t["trial_id"] for t in STUDY.load(stimuli)] == ["colours-a1", "colours-a2", "colours-a3", "colours-a4"]
    schema = schema_for(STUDY)
    assert schema["$id"].endswith("/colours.json") and schema["properties"]["fields"]["$ref"].endswith("ColourFields")
    assert schema["$defs"]["ColourFields"]["properties"]["colour"]["anyOf"][0]["enum"] == list(COLOURS)
    assert read_colour("It is red.").fields["colour"] == "red" and read_colour("It is red.").status == "ok"
    assert read_colour("red or blue").fields["colour"] is None and read_colour("red or blue").missing == []


# --- on the toy model: every stage -------------------------------------------------------------------

def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.mark.server
def test_the_third_study_runs_through_every_stage(stimuli: Path, config_dir: Path, toy_server: Endpoint,
                                                  tmp_path: Path) -> None:
    """Each stage is handed the study object, as the flow hands it the studies its parameters name."""
    colours = STUDY
    cfg = load_config(config_dir)
    run = tmp_path / "run"
    stage = RunFolder(run).study_dir("toy", "colours")
    for ran in (run_exp1_sync(toy_server, colours, colours.load(stimuli), cfg.experiment("colours", "exp1"), stage),
                run_exp2_sync(toy_server, colours, colours.load(stimuli), cfg.experiment("colours", "exp2"), stage)):
        assert ran.failed == 0 and ran.total == 4
    trials = {t["trial_id"]: t for t in colours.load(stimuli)}
    assert set(trials) == {"colours-a1", "colours-a2", "colours-a3", "colours-a4"}

    exp1 = _lines(stage / "exp1.jsonl")
    assert {r["trial_id"] for r in exp1} == set(trials)
    assert {r["study"] for r in exp1} == {"colours"} and {r["prompt_version"] for r in exp1} == {"colours-exp1-v1"}
    for r in exp1:
        assert r["messages"][-1]["content"].startswith(f"In {trials[r['trial_id']]['lighting']} light you see a")
    assert set(pd.read_parquet(stage / "exp1.parquet")["lighting"]) == {"day", "night"}
    exp2 = _lines(stage / "exp2.jsonl")
    assert {r["trial_id"] for r in exp2} == set(trials)
    for r in exp2:
        q = r["questions"]["colour"]
        assert r["status"] == "ok" and q["options"] == list(COLOURS)
        assert sum(q["probs"].values()) == pytest.approx(1.0) and q["argmax"] in COLOURS

    extract_stage(stage, colours, toy_server, concurrency=4, max_tokens=200)
    extracted = _lines(stage / "extracted.jsonl")
    assert [(r["trial_id"], r["replicate"]) for r in extracted] == [(r["trial_id"], r["replicate"]) for r in exp1]
    schema = schema_for(colours)
    table = pd.read_csv(stage / "extracted.csv")
    for rec, reply, row in zip(extracted, exp1, table.to_dict("records"), strict=True):
        ruled = read_colour(reply["response"], reply["finish_reason"])
        assert row["rules_status"] == ruled.status, "the study's own rules read the reply"
        assert rec["status"] in STATUSES and rec["method"] in ("rules", "llm")
        assert set(rec["fields"]) == set(ColourFields.model_fields)
        jsonschema.validate(rec, schema)
        asked = bool(ruled.missing) and ruled.status != "refused" and bool(reply["response"])
        assert rec["extraction_model"] == (toy_server.model if asked else None)
        if rec["method"] == "llm":  # a value the LLM gave is kept only where the reply names it
            assert re.search(rf"\b{rec['fields']['colour']}\b", reply["response"], re.IGNORECASE)
    assert set(table["lighting"]) == {"day", "night"}, "the design cell joined from the Exp 1 table"

    build_report(run, [colours])
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

    compare_run(run, [colours], cfg=cfg, n_boot=10)
    compared = json.loads((run / "compare" / "compare.json").read_text())
    assert compared["ranking"] == [] and "colours" not in compared
    assert "toy/colours: this study has no human comparison" in compared["notes"]
