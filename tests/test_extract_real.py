"""Extraction on real answers: the annotated dev set (rules alone >= 95% per field), prose phrases, the guard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grace.cli import main
from grace.errors import DataError
from grace.extract.evaluate import evaluate, load_annotated, report_lines
from grace.serving import Endpoint
from grace.studies.registry import get_study
from grace.studies.study1.extraction import grounded as grounded_study1
from grace.studies.study1.prose import count_from_prose, knowledge_from_prose
from grace.studies.study1.rules import extract_study1

STUDY1 = get_study("study1")
DEV = Path(__file__).resolve().parent / "fixtures" / "real_answers" / "study1-dev.jsonl"
TARGET = 0.95


def test_rules_reach_the_target_on_the_real_dev_set() -> None:
    """100 real answers of an open-weight model, annotated by people: the rules alone read >= 95% per field and
    invent nothing where people read nothing. Fails if the rules regress."""
    rep = evaluate(DEV, STUDY1)
    (rules,) = rep.stages
    assert rep.rows == 100
    for name, f in rules.fields.items():
        assert f.accuracy >= TARGET, f"{name}: {f.accuracy:.0%} ({f.wrong} wrong, {f.missed} missed); " + \
            "; ".join(f"{m['trial_id']}: {m['extracted']} vs {m['annotated']}" for m in rules.mismatches
                      if m["field"] == name)
        assert f.wrong == 0, name  # an empty field is better than a wrong one
    assert sum(f.invented for f in rules.fields.values()) <= 2


def test_extract_eval_cli_prints_the_table_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    out = tmp_path / "eval.json"
    assert main(["extract-eval", str(DEV), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "100 annotated answers" in printed and "rules" in printed and "initial_answer" in printed
    data = json.loads(out.read_text())
    assert [s["stage"] for s in data["stages"]] == ["rules"]
    figures = data["stages"][0]["fields"]
    assert set(figures) == {"initial_answer", "probabilities", "knowledge"}
    assert all(f["total"] == 100 and f["correct"] + f["wrong"] + f["missed"] + f["invented"] == 100
               for f in figures.values())
    assert main(["extract-eval", str(DEV), "--llm-model", "m"]) == 2  # --llm-endpoint and --llm-model go together


def test_scoring_counts_null_annotations(tmp_path: Path) -> None:
    """Where people read nothing, a value is 'invented'; bets are normalised before comparing (0.01 each)."""
    f = tmp_path / "a.jsonl"
    rows = [
        {"trial_id": "a", "response": "Initial Answer: 2\nProbabilities: $10 on 0, $10 on 1, $30 on 2, $50 on 3\n"
                                      "Knowledge: No", "gold": {"initial_answer": 2, "bets": [1, 1, 3, 5],
                                                                "knowledge": "no"}},
        {"trial_id": "b", "response": "Initial Answer: 3\nProbabilities: 0: 0%, 1: 0%, 2: 50%, 3: 50%\n"
                                      "Knowledge: yes", "gold": {"initial_answer": None, "bets": [],
                                                                 "knowledge": "no"}},
    ]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (st,) = evaluate(f, STUDY1).stages
    assert st.fields["initial_answer"].correct == 1 and st.fields["initial_answer"].invented == 1
    assert st.fields["probabilities"].correct == 1 and st.fields["probabilities"].invented == 1
    assert st.fields["knowledge"].wrong == 1
    assert any("w = a different value" in line for line in report_lines(evaluate(f, STUDY1)))


@pytest.mark.parametrize(("line", "message"), [
    ('{"trial_id": "a", "response": "x"}', "line 1: no 'gold' field"),
    ('{"trial_id": "a", "response": "x", "gold": {"initial_answer": 4}}', "line 1, field 'gold.initial_answer'"),
    ('{"trial_id": "a", "response": "x", "gold": {"bets": [1, 2, 3]}}', "line 1, field 'gold.bets'"),
    ('{"trial_id": "a", "response": "x", "gold": {"knowledge": "maybe"}}', "line 1, field 'gold.knowledge'"),
    ("not json", "line 1: not JSON"),
])
def test_bad_annotation_file_is_one_line_error(tmp_path: Path, line: str, message: str) -> None:
    f = tmp_path / "a.jsonl"
    f.write_text(line + "\n")
    with pytest.raises(DataError) as e:
        load_annotated(f, STUDY1)
    assert message in str(e.value) and str(f) in str(e.value)


# --- general phrase rules (not the dev set's sentences) -------------------------------------------------

@pytest.mark.parametrize(("text", "value"), [
    ("I expect that all three of the phones are broken.", 3),
    ("Most likely all of them have sprouted.", 3),
    ("Given how reliable the batch is, every card has probably won.", 3),
    ("I'd guess none of them are faulty.", 0),
    ("Probably two out of three have passed.", 2),
    ("My best guess is that only one has won.", 1),
    ("It seems likely that the seeds have all sprouted, as two days have passed.", 3),
    ("Since they almost always pass, I think 3.", 3),
    ("Zero, I think.", 0),
    ("It is very likely that the 3 phones Ravi got have all failed.", 3),
    ("I'd say 3/3 of them won.", 3),
])
def test_counts_in_prose(text: str, value: int) -> None:
    assert count_from_prose(text) == (value, None)


@pytest.mark.parametrize("text", [
    "Probably two or three of them have won.",
    "At least two have passed, maybe all three.",
    "Not all of them have sprouted.",
])
def test_counts_that_are_not_one_number_are_refused(text: str) -> None:
    value, problem = count_from_prose(text)
    assert value is None and problem


@pytest.mark.parametrize(("text", "value"), [
    ("Ravi does not know exactly how many of the phones are broken.", "no"),
    ("It is unlikely that Quinn knows exactly how many seeds sprouted.", "no"),
    ("She probably doesn't know the exact number, since she saw one card.", "no"),
    ("Since he has only opened two of them, he cannot be sure how many have won.", "no"),
    ("Having checked every phone, Ravi knows exactly how many are broken.", "yes"),
    ("I believe she knows how many of the cards won.", "yes"),
    ("We know that at least one passed. Still, Tara does not know exactly how many passed.", "no"),
])
def test_knowledge_judgements_in_sentences(text: str, value: str) -> None:
    assert knowledge_from_prose(text) == (value, None)


@pytest.mark.parametrize("text", [
    "It is unclear whether Ravi knows exactly how many phones are broken.",
    "We cannot say for certain that she knows how many cards won.",
    "She may or may not know exactly how many have sprouted.",
    "It can be inferred that he knows how many of the two he opened won, but we cannot be sure he knows "
    "exactly how many of the three won.",
])
def test_doubtful_knowledge_is_no_answer(text: str) -> None:
    value, problem = knowledge_from_prose(text)
    assert value is None and problem


P_70_20_10 = {"0": 0.0, "1": 0.1, "2": 0.2, "3": 0.7}


@pytest.mark.parametrize(("reply", "initial", "probs", "know"), [
    ("**Initial Answer:** 2\n**Probabilities:** I'd put 70% on 3, 20% on 2 and 10% on 1.\n**Knowledge:** No.",
     2, P_70_20_10, "no"),
    ("Initial Answer: It is highly likely that all three cards have won.\nProbabilities:\nOption 0: $0\n"
     "Option 1: $10\nOption 2: $20\nOption 3: $70\nKnowledge: He does not know exactly how many have won.",
     3, P_70_20_10, "no"),
    ("Initial Answer: two out of three\nProbabilities: I would bet $10 on 1 exam passing, $20 on 2 exams passing "
     "and $70 on 3.\nKnowledge: Yes, she graded all of them.", 2, P_70_20_10, "yes"),
    ("### Initial Answer\nNone of them.\n\n### Probabilities\n| outcome | bet |\n|---|---|\n| 0 | 0% |\n"
     "| 1 | 10% |\n| 2 | 20% |\n| 3 | 70% |\n\n### Knowledge\nProbably not - she only tasted one.",
     0, P_70_20_10, "no"),
    ("Initial Answer: 3\nProbabilities: $0 on options 0 and 1, $100 on option 2, $0 on option 3.\nKnowledge: "
     "Response: Based on his statement, it is clear that he knows exactly how many are broken.",
     3, {"0": 0.0, "1": 0.0, "2": 1.0, "3": 0.0}, "yes"),
    ("Initial Answer: 3\nProbabilities: Given what she said, I would bet $100 on option 1.\nKnowledge: yes",
     3, {"0": 0.0, "1": 1.0, "2": 0.0, "3": 0.0}, "yes"),
    ("Initial Answer: 3\nProbabilities: There is a 10% chance of 1, a 20% chance of 2 and a 70% chance of 3.\n"
     "Knowledge: I don't think so.", 3, P_70_20_10, "no"),
    ('{"initial_answer": 1, "probabilities": [0, 10, 20, 70], "knowledge": "no"}', 1, P_70_20_10, "no"),
    ("Initial Answer: 3\nProbabilities: 0 cards won: 0.0, 1 card won: 0.1, 2 cards won: 0.2, 3 cards won: 0.7\n"
     "Knowledge: Not exactly.", 3, P_70_20_10, "no"),
])
def test_replies_in_other_models_styles(reply: str, initial: int, probs: dict[str, float], know: str) -> None:
    r = extract_study1(reply, "stop")
    f = r.fields
    assert f["initial_answer"] == initial, f["notes"]
    assert f["probabilities"] == pytest.approx(probs), f["notes"]
    assert f["knowledge"] == know, f["notes"]
    assert r.status == "ok"


def test_cut_bets_are_not_completed() -> None:
    """A reply cut inside the bets leaves them empty unless the named bets already make the whole $100."""
    cut = extract_study1("Initial Answer: 3\nProbabilities:\n- $0 on 0\n- $10 on 1\n- $30 on 2\n- $", "length")
    assert cut.fields["probabilities"] is None and cut.status == "partial"
    assert "probabilities" not in cut.missing  # a problem (cut short), not absent: not for the LLM
    whole = extract_study1("Initial Answer: 3\nProbabilities:\n- $0 on 0\n- $100 on 1\n- $0 on", "length")
    assert whole.fields["probabilities"] == pytest.approx({"0": 0.0, "1": 1.0, "2": 0.0, "3": 0.0})


def test_guard_accepts_values_stated_in_words() -> None:
    text = ("It is highly likely that all three tickets won. I would bet $100 on option 3. Joe does not know "
            "exactly how many won.")
    assert grounded_study1("initial_answer", 3, text)
    assert grounded_study1("initial_answer", 0, "I think none of them sprouted.")
    assert grounded_study1("initial_answer", 2, "two out of three")
    assert not grounded_study1("initial_answer", 1, text)
    assert grounded_study1("knowledge", "no", text)
    assert not grounded_study1("knowledge", "yes", text)
    assert grounded_study1("probabilities", [0, 0, 0, 100], text)  # unnamed states get nothing
    assert not grounded_study1("probabilities", [0, 0, 0, 0], text)
    assert not grounded_study1("probabilities", [0, 0, 40, 60], text)


@pytest.mark.server
def test_llm_stage_with_smollm2_on_real_answers(smollm2_server: Endpoint, tmp_path: Path) -> None:
    """The real SmolLM2 as the LLM stage on real answers whose fields the rules leave absent: the evaluation
    runs and scores all three stages (the full measurement, 100 answers, is in docs/extraction.md)."""
    rows = [json.loads(line) for line in DEV.read_text().splitlines()[:2]]
    for r in rows:  # the answers without their labels: the rules read (almost) nothing, the LLM is asked
        r["response"] = r["response"].replace("Initial Answer:", "").replace("Probabilities:", "").replace(
            "Knowledge: Response:", "")
    f = tmp_path / "unlabelled.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rep = evaluate(f, STUDY1, smollm2_server, concurrency=2, max_tokens=80)
    assert [s.stage for s in rep.stages] == ["rules", "rules+llm", "llm-only"]
    assert rep.stages[1].summary["llm_requests"] >= 1 and rep.stages[2].summary["llm_requests"] == 2
    for st in rep.stages:
        assert all(f.total == 2 for f in st.fields.values())
    assert rep.llm_model == smollm2_server.model
