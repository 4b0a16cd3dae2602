"""Study 2, politeness judgments (after Yoon, Tessler, Goodman & Frank 2020, speaker production).

A speaker (SP) knows how good a listener's (LS) performance really was (0-3 hearts) and has a goal
(informative, social, or both); the task is what SP would say, among 8 utterances.

Prompts are built from what each column is for, not from Grace's own wording of the cells: Precontext and
Scenario set the scene, the true state comes from `State` alone (stated in the same words on every row, since
a lab's Scenario need not mention it), and the Goal, in whatever wording and clause form, is read by meaning
(grace/studies/study2/goals.py) and written as a sentence that leads to the question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

from grace.studies.base import Messages, Question, Study, Trial
from grace.studies.study2.goals import GOALS, LABELS, classify_goal, goal_and_question
from grace.studies.text import clean

Utterance = Literal[
    "It was terrible", "It was bad", "It was good", "It was amazing",
    "It wasn't terrible", "It wasn't bad", "It wasn't good", "It wasn't amazing",
]
Quality = Literal["terrible", "bad", "good", "amazing"]  # the adjective of an utterance
UTTERANCES: tuple[str, ...] = get_args(Utterance)
QUALITIES: tuple[str, ...] = get_args(Quality)
STATES = ("0 hearts", "1 heart", "2 hearts", "3 hearts")
_NUMBER = {"0": 0, "1": 1, "2": 2, "3": 3, "zero": 0, "no": 0, "none": 0, "one": 1, "two": 2, "three": 3}
_STATE_RE = re.compile(r"^\s*(?:hearts?\s*[:=]?\s*)?(?P<n>[0-3]|zero|no|none|one|two|three)\s*(?:hearts?)?\s*"
                       r"(?:out\s+of\s+3)?\s*$", re.I)

SYSTEM = (
    "You are taking part in a psychology study about how people talk to each other. "
    "Read the scenario and answer as a thoughtful participant would."
)


def goal_label(text: str, names: tuple[str, ...] = ()) -> str | None:
    """informative / social / both for a Goal cell in any wording (see grace/studies/study2/goals.py), else None."""
    return classify_goal(text, tuple(names))


def state_label(text: str) -> str | None:
    """The canonical state ("0 hearts" .. "3 hearts") of a State cell ("2 hearts", "1 hearts", "heart2", "2")."""
    m = _STATE_RE.match(text)
    return STATES[_NUMBER[m["n"].lower()]] if m else None


def state_sentence(speaker: str, state: str) -> str:
    """The true state, in the same words on every row."""
    return f"{speaker}'s private rating was {state} out of 3."


def _names(trial: Trial) -> tuple[str, str]:
    return trial.get("SP_Name", "").strip(), trial.get("LS_Name", "").strip()


@dataclass(frozen=True)
class Study2(Study):
    name: str = "study2"
    required_columns: tuple[str, ...] = ("Precontext", "Scenario", "Goal", "State", "SP_Name", "LS_Name")
    optional_columns: tuple[str, ...] = ("Participant_ID", "Domain", "Utterance")
    key_columns: tuple[str, ...] = ("Participant_ID", "Domain")
    condition_columns: tuple[str, ...] = ("goal", "state")
    prompt_version: str = "study2-exp1-v2"
    exp2_prompt_version: str = "study2-exp2-v2"
    description: str = "politeness judgments (Yoon, Tessler, Goodman & Frank 2020)"

    def check_row(self, row: Trial) -> str | None:
        if state_label(row["State"]) is None:
            return f"column 'State': {row['State']!r} is not '0 hearts' .. '3 hearts'"
        if goal_label(row["Goal"], _names(row)) is None:
            return (f"column 'Goal': {row['Goal']!r} says neither an informative goal (accurate, honest, "
                    "informative...) nor a social one (feel good, nice, kind...), nor is it a label "
                    "(informative, social, both)")
        pid = row.get("Participant_ID", "").strip()
        if pid and not pid.isdigit():
            return f"column 'Participant_ID': {pid!r} is not a whole number"
        return None

    def condition(self, trial: Trial) -> dict[str, str]:
        return {"goal": goal_label(trial.get("Goal", ""), _names(trial)) or "",
                "state": state_label(trial.get("State", "")) or ""}

    def scenario(self, trial: Trial) -> str:
        """The scene, the true state and the goal, ending with the question what the speaker would say."""
        sp, ls = _names(trial)
        state = state_label(trial["State"]) or trial["State"].strip()
        return "\n".join((clean(trial["Precontext"]), clean(trial["Scenario"]), state_sentence(sp, state),
                          goal_and_question(trial["Goal"], sp, ls)))

    def context(self, trial: Trial) -> str:
        return self.scenario(trial)

    def exp1_messages(self, trial: Trial) -> Messages:
        options = "\n".join(f"- {u}" for u in UTTERANCES)
        user = (
            f"{self.scenario(trial)}\n\nChoose exactly one of these utterances:\n{options}\n\n"
            "Reply with the chosen utterance on the first line, then one sentence of reasoning."
        )
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]

    def exp2_questions(self, trial: Trial) -> list[Question]:
        options = ", ".join(f'"{u}"' for u in UTTERANCES)
        user = f"{self.scenario(trial)}\nAnswer with one of: {options}."
        msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
        return [Question("utterance", msgs, UTTERANCES)]


__all__ = ["GOALS", "LABELS", "QUALITIES", "STATES", "UTTERANCES", "Quality", "Study2", "Utterance", "goal_label",
           "state_label", "state_sentence"]
