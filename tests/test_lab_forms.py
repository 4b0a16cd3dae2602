"""Study CSVs as labs write them: Goal wordings read by meaning, prompts built from the columns' roles.

The CSVs in tests/lab_forms/ are our own stimuli in the lab's form: the predecessor project's conditional
Goals ("If Emma wanted to ..., rather than ..."), Scenarios that never mention the hearts (the state is only
in State), survey markup in study 1's cells, extra columns and shuffled column order. Every prompt must state
the row's true state in the same words, read as sentences, and the stage tables must keep the extra columns.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from grace.cli import main
from grace.compare.outputs import load_study
from grace.report.load import conditions_table
from grace.serving import Endpoint
from grace.studies.registry import get_study
from grace.studies.study2 import STATES, state_label, state_sentence
from grace.studies.study2.goals import classify_goal, goal_and_question
from grace.studies.text import clean
from tests.conftest import ROOT

FORMS = Path(__file__).parent / "lab_forms"
S2_LAB = FORMS / "study2_lab.csv"
S2_WORDINGS = FORMS / "study2_goal_wordings.csv"
S1_LAB = FORMS / "study1_lab.csv"
STUDY1, STUDY2 = get_study("study1"), get_study("study2")
S2_FILES = [S2_LAB, S2_WORDINGS, ROOT / "data" / "study2_sample.csv"]
S1_FILES = [S1_LAB, ROOT / "data" / "study1_sample.csv"]

GOALS = [  # (cell, speaker, listener, meaning)
    ("If Emma wanted to make Wendy feel good, rather than give informative feedback", "Emma", "Wendy", "social"),
    ("If Emma wanted to give accurate and informative feedback, rather than make Wendy feel good", "Emma", "Wendy",
     "informative"),
    ("If Emma wanted to BOTH make Wendy feel good AND give informative feedback", "Emma", "Wendy", "both"),
    ("If Frank wanted to make Joy feel good, rather than give informative feedback", "Frank", "Joy", "social"),
    ("If Frank wanted to give accurate and informative feedback, rather than make Joy feel good", "Frank", "Joy",
     "informative"),
    ("to make the listener feel good", "Ana", "Bo", "social"),
    ("to give accurate and informative feedback", "Ana", "Bo", "informative"),
    ("to BOTH make the listener feel good AND give accurate and informative feedback", "Ana", "Bo", "both"),
    ("informative", "Ana", "Bo", "informative"),
    ("Social", "Ana", "Bo", "social"),
    ("BOTH", "Ana", "Bo", "both"),
    ("Goal: informative", "Ana", "Bo", "informative"),
    ("Ana wants to be honest with Bo", "Ana", "Bo", "informative"),
    ("to be nice", "Ana", "Bo", "social"),
    ("kindness", "Ana", "Bo", "social"),
    ("to tell the truth", "Ana", "Bo", "informative"),
    ("to be truthful and kind", "Ana", "Bo", "both"),
    ("to tell the truth without hurting Bo's feelings", "Ana", "Bo", "both"),
    ("to not hurt Bo's feelings", "Ana", "Bo", "social"),
    ("to be honest, even if it hurts Bo's feelings", "Ana", "Bo", "informative"),
    ("be nice rather than accurate", "Ana", "Bo", "social"),
    ("to be kind instead of being candid", "Ana", "Bo", "social"),
    ("Rather than be harsh, Ana wanted to be supportive", "Ana", "Bo", "social"),
    ("If, rather than being nice, Ana wanted to be truthful", "Ana", "Bo", "informative"),
    ("to make Bo feel good, rather than give accurate, honest feedback", "Ana", "Bo", "social"),
    ("Ana would rather be kind than honest", "Ana", "Bo", "social"),
    ("Ana prioritises honesty over kindness", "Ana", "Bo", "informative"),
    ("If Ana cared more about Bo's feelings than about accuracy", "Ana", "Bo", "social"),
    ("to give accurate feedback but not be nice", "Ana", "Bo", "informative"),
    ("If Ana didn't want to be harsh", "Ana", "Bo", "social"),
    ("to never lie", "Ana", "Bo", "informative"),
    ("to tell Bo what she really thought", "Ana", "Bo", "informative"),
    ("to be both informative and social", "Ana", "Bo", "both"),
    ("to make sure Bo doesn't feel bad", "Ana", "Bo", "social"),
    ("to keep Bo's spirits up", "Ana", "Bo", "social"),
    ("to be nice but not lie", "Ana", "Bo", "both"),
    ("to give an honest opinion while staying kind", "Ana", "Bo", "both"),
    ("to give feedback", "Ana", "Bo", None),
    ("If Ana wanted to give Bo her feedback, rather than say nothing", "Ana", "Bo", None),
    ("to get the conversation over with quickly", "Ana", "Bo", None),
    ("not nice", "Ana", "Bo", None),
    ("Frank", "Frank", "Joy", None),  # a name is not a cue, even when it is an English word
]


@pytest.mark.parametrize("cell,speaker,listener,meaning", GOALS)
def test_goal_is_classified_by_meaning(cell: str, speaker: str, listener: str, meaning: str | None) -> None:
    assert classify_goal(cell, (speaker, listener)) == meaning
    if meaning is None:
        return
    text = goal_and_question(cell, speaker, listener)
    assert_sentences(text)
    assert re.search(rf"(?:, w|^W)hat would {speaker} be most likely to say\?$", text, re.M), text
    assert "the listener" not in text and "the speaker" not in text


def assert_sentences(text: str) -> None:
    """Sentences, not glued fragments: no 'wanted If', 'wanted to to', doubled or stray punctuation."""
    for bad in (r"\bwanted\s+if\b", r"\bwanted\s+to\s+to\b", r"\bwanted\s+wants?\b", r"\bgoal was to to\b",
                r"[.?!,]\s*[.,]", r"\?\s*\?", r"\s[.,?]", r"^If\b[^?\n]*\.$"):
        assert not re.search(bad, text, re.I | re.M), f"{bad!r} in {text!r}"
    for line in text.splitlines():
        assert line[:1].isupper() or line[:1] in "\"'-", f"line does not start a sentence: {line!r}"
        assert line.endswith((".", "?", "!", ":", '"', "'", "\u201d", "\u2019")), f"not a sentence's end: {line!r}"


@pytest.mark.parametrize("path", [S2_LAB, S2_WORDINGS], ids=lambda p: p.name)
def test_check_data_accepts_the_lab_forms(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-data", "--study", "study2", str(path)]) == 0, capsys.readouterr().err
    assert main(["check-data", "--study", "study1", str(S1_LAB)]) == 0, capsys.readouterr().err


def test_the_lab_forms_cover_the_goal_forms_states_and_names() -> None:
    lab = STUDY2.load(S2_LAB)
    words = STUDY2.load(S2_WORDINGS)
    for trials in (lab, words):
        assert [STUDY2.condition(t)["goal"] for t in trials] == [t["expected_goal"] for t in trials]
    assert all(t["Goal"].startswith("If ") for t in lab) and all("heart" not in t["Scenario"] for t in lab)
    assert {STUDY2.condition(t)["state"] for t in lab} == set(STATES)
    assert {STUDY2.condition(t)["goal"] for t in lab} == {"informative", "social", "both"}
    assert len({t["SP_Name"] for t in lab + words}) >= 6
    assert any(state_label(t["State"]) != t["State"] for t in lab + words), "State spellings beyond the canonical"


def study2_prompts(trial: dict[str, str]) -> list[str]:
    msgs = [STUDY2.exp1_messages(trial), *(q.messages for q in STUDY2.exp2_questions(trial))]
    for m in msgs:
        assert [x["role"] for x in m] == ["system", "user"]
    return [m[1]["content"] for m in msgs] + [STUDY2.context(trial)]


@pytest.mark.parametrize("path", [*S2_FILES, ROOT / "data" / "study2.csv"], ids=lambda p: p.name)
def test_every_study2_prompt_states_the_true_state_once_in_the_same_words(path: Path) -> None:
    for t in STUDY2.load(path):
        state = state_label(t["State"])
        said = state_sentence(t["SP_Name"].strip(), state)
        for text in study2_prompts(t):
            assert said in text and len(re.findall(r"\bout of 3\b", text)) == 1, text
            assert len(re.findall(r"\bhearts?\b", text)) == 1, f"the state is stated twice: {text}"
            scene = text.split("\n\nChoose")[0].split("\nAnswer with one of")[0]
            assert_sentences(scene)
            assert "the listener" not in scene and t["LS_Name"].strip() in scene


def test_study2_prompt_before_the_goal_is_the_same_for_every_goal_wording() -> None:
    """The state sentence does not depend on the Goal's wording: only names and number change."""
    shapes = set()
    for path in S2_FILES:
        for t in STUDY2.load(path):
            line = next(x for x in STUDY2.context(t).splitlines() if "out of 3" in x)
            shapes.add(re.sub(r"\d hearts?", "N heart", line.replace(t["SP_Name"].strip(), "SP")))
    assert shapes == {"SP's private rating was N heart out of 3."}


# survey markup, entities, a literal \n, the survey's answer cue or question label, doubled quotes
MARKUP = r"</?(?:br|p|b|i|em|strong|div|span)\b[^>]*>|&[a-z#0-9]+;|\\n|\bResponse\b|\bQ\d*:|Question \d: Question|\"\""


def study1_prompts(trial: dict[str, str]) -> list[str]:
    msgs = [STUDY1.exp1_messages(trial), *(q.messages for q in STUDY1.exp2_questions(trial))]
    for m in msgs:
        assert [x["role"] for x in m] == ["system", "user"]
    return [m[1]["content"] for m in msgs] + [STUDY1.context(trial)]


@pytest.mark.parametrize("path", S1_FILES, ids=lambda p: p.name)
def test_study1_prompts_come_from_the_columns_roles(path: Path) -> None:
    for t in STUDY1.load(path):
        exp1, prior, posterior, knowledge, context = study1_prompts(t)
        for text in (exp1, prior, posterior, knowledge, context):
            assert not re.search(MARKUP, text), text
            assert clean(t["story_setup"]) in text
        for text in (exp1, context):
            lines = text.splitlines()
            asked = [x for x in lines if x.startswith("Question ")]
            assert [x[:10] for x in asked] == ["Question 1", "Question 2", "Question 3"]
            assert all(re.match(r"Question \d: [A-Z].*\? ?", x) for x in asked), asked
            said = [x for x in lines if x.startswith("Then ")]
            assert len(said) == 1 and said[0].endswith(('."', '.\u201d', ".")), said
        assert "Then " in posterior and "Then " in knowledge and "Then " not in prior
        assert_sentences(context.split("\n\n", 1)[1])


@pytest.mark.parametrize("study,path", [("study1", S1_LAB), ("study2", S2_LAB), ("study2", S2_WORDINGS)],
                         ids=["s1-lab", "s2-lab", "s2-wordings"])
def test_column_order_does_not_matter(study: str, path: Path, tmp_path: Path) -> None:
    s = get_study(study)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    cols = list(rows[0])[::-1]
    copy = tmp_path / path.name
    with open(copy, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    a, b = s.load(path), s.load(copy)
    assert a == b and all(set(t) == {*cols, "trial_id"} for t in a), "every column kept, whatever the order"
    assert [s.exp1_messages(t) for t in a] == [s.exp1_messages(t) for t in b]


# --- the sample protocol on the toy model: Exp 1 and Exp 2 written for a lab-form CSV ---------------------

@pytest.fixture(scope="module")
def short_answers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's config with 16-token Exp 1 answers: the prompts are under test here, not the answers."""
    d = tmp_path_factory.mktemp("config-short")
    shutil.copy(ROOT / "config" / "models.yaml", d / "models.yaml")
    exp = yaml.safe_load((ROOT / "config" / "experiments.yaml").read_text())
    for e in exp["experiments"]:
        if e["experiment"] == "exp1":
            e["sampling"]["max_tokens"] = 16
    for s in exp["studies"].values():
        s["input"], s["sample"] = str(ROOT / s["input"]), str(ROOT / s["sample"])
    (d / "experiments.yaml").write_text(yaml.safe_dump(exp, sort_keys=False))
    return d


@pytest.mark.server
@pytest.mark.parametrize("study,path,extra", [
    ("study2", S2_LAB, ("Item", "List", "Notes", "expected_goal", "Utterance")),
    ("study2", S2_WORDINGS, ("expected_goal", "Condition_Code")),
    ("study1", S1_LAB, ("item_id", "condition_label")),
], ids=["s2-lab", "s2-wordings", "s1-lab"])
def test_query_and_score_a_lab_form_csv_on_toy(study: str, path: Path, extra: tuple[str, ...], toy_server: Endpoint,
                                               short_answers: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    s = get_study(study)
    trials = {t["trial_id"]: t for t in s.load(path)}
    for verb in ("query", "score"):
        code = main([verb, "--model", "toy", "--study", study, "--input", str(path), "--endpoint",
                     toy_server.base_url, "--out", str(tmp_path), "--config-dir", str(short_answers)])
        assert code == 0, capsys.readouterr()
    stage = tmp_path / "toy" / study
    exp1 = [json.loads(x) for x in (stage / "exp1.jsonl").read_text().splitlines()]
    exp2 = [json.loads(x) for x in (stage / "exp2.jsonl").read_text().splitlines()]
    assert {r["trial_id"] for r in exp1} == {r["trial_id"] for r in exp2} == set(trials)
    assert {r["prompt_version"] for r in exp1} == {s.prompt_version}
    assert {r["prompt_version"] for r in exp2} == {s.exp2_prompt_version}
    for r in exp1:
        assert [m["role"] for m in r["messages"]] == ["system", "user"] and r["status"] in ("ok", "truncated")
    t1 = pd.read_parquet(stage / "exp1.parquet")
    t2 = pd.read_parquet(stage / "exp2.parquet")
    assert set(extra) <= set(t1.columns), "the Exp 1 table keeps the input's extra columns"
    assert set(extra) <= set(t2.columns), "the Exp 2 table keeps the input's extra columns"
    cond = tuple(s.condition(next(iter(trials.values()))))
    assert set(cond) <= set(t1.columns) and set(cond) <= set(t2.columns)
    if study == "study2":
        for r in exp1:
            t = trials[r["trial_id"]]
            assert state_sentence(t["SP_Name"], state_label(t["State"])) in r["messages"][1]["content"]
        for r in exp2:
            t = trials[r["trial_id"]]
            prompt = r["questions"]["utterance"]["prompt"]  # the scored text after the chat template
            assert state_sentence(t["SP_Name"], state_label(t["State"])) in prompt
            assert len(re.findall(r"\bout of 3\b", prompt)) == 1
        by_id = t1.drop_duplicates("trial_id").set_index("trial_id")
        assert (by_id["goal"] == by_id["expected_goal"]).all()
        assert set(by_id["state"]) <= set(STATES)
    else:
        for r in exp1:
            t = trials[r["trial_id"]]
            assert clean(t["story_setup"]) in r["messages"][1]["content"]
        assert {(str(a), str(o)) for a, o in zip(t1["access"], t1["observe"], strict=True)} == {
            (t["access"], t["observe"]) for t in trials.values()}
    # the human comparison and the report read the design cells from these tables (via Study.condition)
    expected = {tid: s.condition(t) for tid, t in trials.items()}
    assert all(all(c.values()) for c in expected.values())
    compared = load_study(stage, s, None)
    assert compared.conditions == expected and compared.unknown_trials == 0
    reported = conditions_table(stage, s)
    assert reported is not None
    assert {r.pop("trial_id"): r for r in reported.to_dict("records")} == expected
