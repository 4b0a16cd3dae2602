"""The rule stage on realistic and adversarial replies: >= 95% read, zero wrong values where unambiguous."""

from __future__ import annotations

import pytest

from grace.studies.study1.rules import extract_study1
from grace.studies.study2.rules import extract_study2

P1234 = {"0": 0.1, "1": 0.2, "2": 0.3, "3": 0.4}
P_0_10_60_30 = {"0": 0.0, "1": 0.1, "2": 0.6, "3": 0.3}

# (reply, initial_answer, probabilities, knowledge): each answer stated once, unambiguously.
STUDY1_REALISTIC: list[tuple[str, int, dict[str, float], str]] = [
    ("Initial Answer: 2\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%\nKnowledge: yes", 2, P1234, "yes"),
    ("**Initial Answer:** [2]\n**Probabilities:** 0: 10%, 1: 20%, 2: 30%, 3: 40%\n**Knowledge:** No.", 2, P1234,
     "no"),
    ("Initial Answer: 3\nProbabilities: 0: 0%, 1: 10%, 2: 60%, 3: 30%\nKnowledge: no\n\nRavi only checked two of "
     "the phones, so he cannot be sure about the third.", 3, P_0_10_60_30, "no"),
    ("Initial Answer: 3\n\nProbabilities:\n- 0: 0%\n- 1: 10%\n- 2: 60%\n- 3: 30%\n\nKnowledge: No", 3,
     P_0_10_60_30, "no"),
    ("Initial Answer: 3\nBets:\n- $0 on 0 fruits\n- $10 on 1 fruit\n- $60 on 2 fruits\n- $30 on 3 fruits\n"
     "Knowledge: no", 3, P_0_10_60_30, "no"),
    ("Initial Answer: 1\nProbabilities: 0.1/0.2/0.3/0.4\nKnowledge: yes", 1, P1234, "yes"),
    ("Initial Answer: 2\nProbabilities: 10%, 20%, 30%, 40%\nKnowledge: yes", 2, P1234, "yes"),
    ("Initial answer - 2\nProbabilities - 0: 10%, 1: 20%, 2: 30%, 3: 40%\nKnowledge - yes", 2, P1234, "yes"),
    ("Reasoning: The seeds almost always sprout, so I expect all of them did. Quinn only saw one seed.\n\n"
     "Initial Answer: 3\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%\nKnowledge: No", 3, P1234, "no"),
    ("Let me think. Most phones in the batch are broken.\nInitial Answer: 3\nProbabilities: 0: 0%, 1: 10%, "
     "2: 60%, 3: 30%\nKnowledge: no\nThat is my answer.", 3, P_0_10_60_30, "no"),
    ("Initial Answer: three\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%\nKnowledge: yes", 3, P1234, "yes"),
    ("Initial Answer: All three\nProbabilities: 0: 0%, 1: 10%, 2: 60%, 3: 30%\nKnowledge: no", 3, P_0_10_60_30,
     "no"),
    ("Initial Answer: 2 (out of 3)\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%\nKnowledge: yes", 2, P1234,
     "yes"),
    ("Initial Answer: 2 fruits\nProbabilities: 0 fruits: 10%, 1 fruit: 20%, 2 fruits: 30%, 3 fruits: 40%\n"
     "Knowledge: Yes", 2, P1234, "yes"),
    ("Initial Answer: 0\nProbabilities: P(0) = 0.1, P(1) = 0.2, P(2) = 0.3, P(3) = 0.4\nKnowledge: no", 0, P1234,
     "no"),
    ("1. Initial Answer: 3\n2. Probabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%\n3. Knowledge: yes", 3, P1234, "yes"),
    ("Initial Answer: 3, Probabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%, Knowledge: no", 3, P1234, "no"),
    ("Initial Answer: 2\nProbabilities: 0: 10 percent, 1: 20 percent, 2: 30 percent, 3: 40 percent\n"
     "Knowledge: yes", 2, P1234, "yes"),
    ("## Answers\n\n**Initial Answer**: 3\n\n**Probabilities**:\n* 0: 0%\n* 1: 10%\n* 2: 60%\n* 3: 30%\n\n"
     "**Knowledge**: No - she only looked at two.", 3, P_0_10_60_30, "no"),
    ("Initial Answer: 2\nProbabilities: 0 - 10%, 1 - 20%, 2 - 30%, 3 - 40%\nKnowledge: Yes, she saw all of them.",
     2, P1234, "yes"),
    ("Initial Answer: 3\nProbabilities: 0: 10, 1: 20, 2: 30, 3: 40\nKnowledge: no", 3, P1234, "no"),
    ("Initial Answer: 1\nProbabilities:\n0 - 10%\n1 - 20%\n2 - 30%\n3 - 40%\nKnowledge: Yes.", 1, P1234, "yes"),
    ("Initial Answer: 2\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%\nKnowledge: No, he does not know exactly.",
     2, P1234, "no"),
    ("Question 1: 3\nQuestion 2: 0: 0%, 1: 10%, 2: 60%, 3: 30%\nQuestion 3: No", 3, P_0_10_60_30, "no"),
    ("1. 3\n2. 0: 0%, 1: 10%, 2: 60%, 3: 30%\n3. No.", 3, P_0_10_60_30, "no"),
    ("Initial Answer: 2\n\nProbabilities: I would put $10 on 0, $20 on 1, $30 on 2 and $40 on 3.\n\nKnowledge: yes",
     2, P1234, "yes"),
    ("Initial Answer: 2\nProbabilities: 0: 10.0%, 1: 20.0%, 2: 30.0%, 3: 40.0%\nKnowledge: yes", 2, P1234, "yes"),
    ("Initial Answer: 3\nProbabilities: 0: 0.00, 1: 0.10, 2: 0.60, 3: 0.30\nKnowledge: no", 3, P_0_10_60_30, "no"),
    ("Initial Answer: 3.\nProbabilities: 0 (0%), 1 (10%), 2 (60%), 3 (30%)\nKnowledge: no.", 3, P_0_10_60_30,
     "no"),
    ("Initial Answer: [3]\nProbabilities: [0: 0%, 1: 10%, 2: 60%, 3: 30%]\nKnowledge: [no]", 3, P_0_10_60_30, "no"),
    ("Initial Answer: I think 2\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%\nKnowledge: yes", 2, P1234, "yes"),
    ("My initial answer is 2.\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%\nKnowledge: yes", 2, P1234, "yes"),
    ("Initial Answer: 3\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%\nKnowledge: no\nReasoning: Quinn saw only "
     "one of the 3 seeds, so 2 of them are unknown.", 3, P1234, "no"),
    ("Sure! Here are my answers.\n\nInitial Answer: 3\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%\n"
     "Knowledge: No\n\nExplanation: the batch is usually faulty; 1 of the 3 was checked.", 3, P1234, "no"),
    ("Initial Answer: 3\r\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%\r\nKnowledge: no\r\n", 3, P1234, "no"),
    ("Initial Answer: 2\nProbabilities: 0 \u2013 10%, 1 \u2013 20%, 2 \u2013 30%, 3 \u2013 40%\nKnowledge: Yes",
     2, P1234, "yes"),
    ("initial answer: 2\nprobabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%\nknowledge: yes", 2, P1234, "yes"),
    ("INITIAL ANSWER: 2\nPROBABILITIES: 0: 10%, 1: 20%, 2: 30%, 3: 40%\nKNOWLEDGE: YES", 2, P1234, "yes"),
    ("Initial Answer: 0\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%\nKnowledge: no\nThe speaker looked at 2 of "
     "3 and saw 1 of them: 1 could be 2.", 0, P1234, "no"),
    ("Initial Answer: 2\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%\nKnowledge: yes\n\n"
     "Note: these sum to 100%.", 2, P1234, "yes"),
    ("Initial Answer: 2\nProbability: 0: 10%, 1: 20%, 2: 30%, 3: 40%\nKnowledge: yes", 2, P1234, "yes"),
    ("Initial Answer: 3\nProbabilities: 0: 10%; 1: 20%; 2: 30%; 3: 40%\nKnowledge: no", 3, P1234, "no"),
]

# (reply, status, field values that must hold): adversarial cases get explicit statuses, never a guess.
STUDY1_ADVERSARIAL: list[tuple[str, str, dict]] = [
    ("Initial Answer: 1\nInitial Answer: 2\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%\nKnowledge: yes",
     "partial", {"initial_answer": None, "knowledge": "yes"}),
    ("Initial Answer: 2\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 20%\nKnowledge: yes", "partial",
     {"sums_to_100": False, "probabilities_sum": 80.0, "probabilities": {"0": 0.125, "1": 0.25, "2": 0.375,
                                                                         "3": 0.25}}),
    ("Initial Answer: 2\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 70%\nKnowledge: yes", "partial",
     {"sums_to_100": False, "probabilities_sum": 130.0, "probabilities_raw": [10.0, 20.0, 30.0, 70.0]}),
    ("Initial Answer: 2\nProbabilities: 0: -10%, 1: 20%, 2: 50%, 3: 40%\nKnowledge: yes", "partial",
     {"probabilities": None, "initial_answer": 2}),
    ("Initial Answer: -1\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%\nKnowledge: no", "partial",
     {"initial_answer": None}),
    ("Initial Answer: 3-4\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%\nKnowledge: no", "partial",
     {"initial_answer": None}),
    ("Initial Answer: 2 or 3\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%\nKnowledge: no", "partial",
     {"initial_answer": None}),
    ("Initial Answer: 5\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%\nKnowledge: no", "partial",
     {"initial_answer": None}),
    ("", "unparseable", {"initial_answer": None, "probabilities": None, "knowledge": None}),
    ("   \n ", "unparseable", {"initial_answer": None}),
    ("Initial Answer: 2\nProbabilities: 0: 10%, 1: 20%, 2: 3", "partial",
     {"initial_answer": 2, "probabilities": None, "knowledge": None}),
    ("Initial Answer: 2\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%\nKnowledge: <yes or no>", "partial",
     {"knowledge": None}),
    ("Initial Answer: <a number from 0 to 3>\nProbabilities: 0: <x>%, 1: <x>%, 2: <x>%, 3: <x>%\n"
     "Knowledge: <yes or no>", "unparseable", {"initial_answer": None, "probabilities": None}),
    ("Initial Answer: 2\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%\nKnowledge: yes\nKnowledge: no", "partial",
     {"knowledge": None}),
    ("Initial Answer: 2\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 2: 40%\nKnowledge: yes", "partial",
     {"probabilities": None}),
    ("I'm sorry, but I can't answer questions about this scenario.", "refused", {"initial_answer": None}),
    ("As an AI, I do not make guesses about people.", "refused", {"knowledge": None}),
    ("Initial Answer: 2\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%\nKnowledge: not sure", "partial",
     {"knowledge": None}),
    ("Initial Answer: 0.00000067%\nProbabilities: 0.00055511 (probability of at least one)\nKnowledge: 100%",
     "unparseable", {"initial_answer": None, "probabilities": None, "knowledge": None}),
    ("Question 1: Before Ravi says anything, how many of the 3 phones do you think have a burned-out transistor?",
     "unparseable", {"initial_answer": None}),
    ("Initial Answer: 2\nProbabilities: 0: 0%, 1: 0%, 2: 0%, 3: 0%\nKnowledge: yes", "partial",
     {"probabilities": None}),
]

# Study 2: (reply, utterance)
STUDY2_REALISTIC: list[tuple[str, str]] = [
    ("It wasn't bad\nGrace wants to be kind without lying.", "It wasn't bad"),
    ("It wasn't bad.", "It wasn't bad"),
    ("It was amazing\nRavi wants Uma to feel good.", "It was amazing"),
    ('"It was terrible"\nTara wants to be accurate, and the poem deserved 0 hearts.', "It was terrible"),
    ("**It wasn't terrible**\n\nThis softens the truth while staying honest.", "It wasn't terrible"),
    ("Grace would say: \"It was good\" because she wants Chen to feel good.", "It was good"),
    ("Answer: It wasn't amazing\nReason: honest but kind.", "It wasn't amazing"),
    ("Utterance: It was bad\nReasoning: she wants accurate feedback.", "It was bad"),
    ("Chosen utterance: It wasn't good", "It wasn't good"),
    ("It was not good.\nHe wants to be informative.", "It wasn't good"),
    ("Since Grace rated the dance 3 hearts and wants to be informative, she would say: It was amazing.",
     "It was amazing"),
    ("I would choose \"It wasn't bad\". Saying it was terrible would hurt Chen's feelings.", "It wasn't bad"),
    ("It wasn\u2019t bad\nKind and honest.", "It wasn't bad"),
    ("- It was good\nThe performance earned 2 hearts.", "It was good"),
    ("It was amazing! Tara wants Xenia to feel good.", "It was amazing"),
    ("The best choice: It was terrible.", "It was terrible"),
    ("It wasn't amazing\n\nThe presentation got 2 hearts, so amazing would be false, and 'It wasn't amazing' is "
     "both honest and gentle.", "It wasn't amazing"),
    ("Ravi would most likely say \"It wasn't terrible\".", "It wasn't terrible"),
    ("It was good. Liam gave it 2 hearts.", "It was good"),
    ("IT WAS BAD\nHonest feedback.", "It was bad"),
    ("Response: It wasn't bad - it is kind and not a lie.", "It wasn't bad"),
    ("It was terrible\n\nReasoning: 0 hearts out of 3, and the goal is accurate feedback.", "It was terrible"),
    ("Choose exactly one:\n- It was terrible\n- It was bad\n- It was good\n- It was amazing\n- It wasn't terrible"
     "\n- It wasn't bad\n- It wasn't good\n- It wasn't amazing\n\nMy answer: It wasn't bad", "It wasn't bad"),
    ("It wasn't good\nIt got only one heart; this is honest but not harsh.", "It wasn't good"),
    ("It was amazing.", "It was amazing"),
    # real SmolLM2-135M replies (grace query --model smollm2 --study study2 --sample)
    ('Vera\'s response would be "It was terrible."', "It was terrible"),
    ('Amir would likely respond with the choice of "It was amazing."', "It was amazing"),
    ('Pia is likely to say "It was terrible" - it was bad.', "It was terrible"),
    ('I\'d be most likely to say: \n\n"It wasn\'t terrible."\n\nThis utterance is a perfect example of',
     "It wasn't terrible"),
    ('Ravi is most likely to say: "It was terrible" - This is a conclusion that cannot be expressed as a simple '
     'question, as it requires a complete sentence that includes the attribute "It was terrible".', "It was terrible"),
]

STUDY2_ADVERSARIAL: list[tuple[str, str]] = [  # (reply, status); utterance must be None
    ("", "unparseable"),
    ("It was terrible. It wasn't bad.", "unparseable"),
    ("- It was terrible\n- It was bad\n- It was good\n- It was amazing\n- It wasn't terrible", "unparseable"),
    ("Chen did great and deserved praise.", "unparseable"),
    ("I'm sorry, I can't choose one of these.", "refused"),
    ("It was okay", "unparseable"),
    ("- It was horrible.", "unparseable"),
    ("- It was terrible\n- It was bad\n- It was good", "unparseable"),  # a partly echoed option list
]


def _close(a: dict[str, float] | None, b: dict[str, float]) -> bool:
    return a is not None and set(a) == set(b) and all(abs(a[k] - b[k]) < 1e-9 for k in b)


def test_study1_realistic_all_read_and_zero_wrong() -> None:
    """Every realistic reply is read in full today (100%): one the rules stop reading fails here."""
    unread, wrong = [], []
    for text, initial, probs, know in STUDY1_REALISTIC:
        r = extract_study1(text, "stop")
        f = r.fields
        if f["initial_answer"] is not None and f["initial_answer"] != initial:
            wrong.append((text, "initial_answer", f["initial_answer"]))
        if f["probabilities"] is not None and not _close(f["probabilities"], probs):
            wrong.append((text, "probabilities", f["probabilities"]))
        if f["knowledge"] is not None and f["knowledge"] != know:
            wrong.append((text, "knowledge", f["knowledge"]))
        if r.status != "ok":
            unread.append((text, r.status, r.fields["notes"]))
    assert not wrong, wrong
    assert not unread, f"rules left {len(unread)} of {len(STUDY1_REALISTIC)} unread: {unread}"


def test_study2_realistic_all_read_and_zero_wrong() -> None:
    unread, wrong = [], []
    for text, utt in STUDY2_REALISTIC:
        r = extract_study2(text, "stop")
        if r.fields["utterance"] is not None and r.fields["utterance"] != utt:
            wrong.append((text, r.fields["utterance"]))
        if r.status != "ok":
            unread.append((text, r.status, r.fields["notes"]))
    assert not wrong, wrong
    assert not unread, f"rules left {len(unread)} of {len(STUDY2_REALISTIC)} unread: {unread}"


@pytest.mark.parametrize(("text", "status", "expect"), STUDY1_ADVERSARIAL)
def test_study1_adversarial(text: str, status: str, expect: dict) -> None:
    r = extract_study1(text, "stop")
    assert r.status == status, (r.status, r.fields)
    for k, v in expect.items():
        if isinstance(v, dict):
            assert _close(r.fields[k], v), r.fields[k]
        else:
            assert r.fields[k] == v, (k, r.fields[k])
    if status != "ok":
        assert r.fields["notes"], "a non-ok record says why"


@pytest.mark.parametrize(("text", "status"), STUDY2_ADVERSARIAL)
def test_study2_adversarial(text: str, status: str) -> None:
    r = extract_study2(text, "stop")
    assert r.status == status
    assert r.fields["utterance"] is None
    assert r.fields["notes"]


def test_conflicts_are_not_sent_to_the_llm() -> None:
    """Only fields with no candidate at all go to the LLM stage; conflicts and invalid values never do."""
    r = extract_study1("Initial Answer: 1\nInitial Answer: 2\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%")
    assert r.missing == ["knowledge"]
    assert extract_study2("It was terrible. It wasn't bad.").missing == []
    assert extract_study2("Chen did great.").missing == ["utterance"]
    assert extract_study2("- It was terrible\n- It was bad\n- It was good").missing == []  # an echo, not absent


def test_truncated_reply_is_noted() -> None:
    r = extract_study1("Initial Answer: 2\nProbabilities: 0: 10%, 1: 20%, 2: 3", "length")
    assert r.status == "partial"
    assert "reply truncated by max_tokens" in r.fields["notes"]
    assert r.fields["probabilities"] is None


def test_study2_fields_split_polarity_and_quality() -> None:
    f = extract_study2("It wasn't amazing").fields
    assert (f["utterance"], f["polarity"], f["quality"]) == ("It wasn't amazing", "negated", "amazing")
    f = extract_study2("It was bad").fields
    assert (f["polarity"], f["quality"]) == ("affirmative", "bad")


def test_probabilities_keep_raw_and_sum_flag() -> None:
    f = extract_study1("Initial Answer: 2\nProbabilities: 0.1/0.2/0.3/0.4\nKnowledge: yes").fields
    assert f["probabilities_raw"] == [0.1, 0.2, 0.3, 0.4]
    assert f["probabilities_unit"] == "fraction"
    assert f["sums_to_100"] is True
    assert abs(sum(f["probabilities"].values()) - 1) < 1e-9


def test_reasoning_is_kept() -> None:
    f = extract_study1("Initial Answer: 3\nProbabilities: 0: 0%, 1: 10%, 2: 60%, 3: 30%\nKnowledge: no\n\n"
                       "Ravi only checked two of the phones.").fields
    assert f["reasoning"] == "Ravi only checked two of the phones."
