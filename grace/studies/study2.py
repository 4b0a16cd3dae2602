"""Study 2, politeness judgments (after Yoon, Tessler, Goodman & Frank 2020, speaker production).

A speaker (SP) knows how good a listener's (LS) performance really was (0-3 hearts) and has a goal
(informative, social, or both); the task is what SP would say, among 8 utterances.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from grace.studies.base import Messages, Question, Study, Trial

UTTERANCES = (
    "It was terrible",
    "It was bad",
    "It was good",
    "It was amazing",
    "It wasn't terrible",
    "It wasn't bad",
    "It wasn't good",
    "It wasn't amazing",
)
STATES = ("0 hearts", "1 heart", "2 hearts", "3 hearts")
GOALS = {
    "informative": "to give accurate and informative feedback",
    "social": "to make the listener feel good",
    "both": "to BOTH make the listener feel good AND give accurate and informative feedback",
}
GOAL_OF_TEXT = {v: k for k, v in GOALS.items()}
_STATE_RE = re.compile(r"^([0-3]) hearts?$")

SYSTEM = (
    "You are taking part in a psychology study about how people talk to each other. "
    "Read the scenario and answer as a thoughtful participant would."
)


def goal_label(text: str) -> str | None:
    """informative / social / both for a Goal cell (the phrasing or the label itself)."""
    t = text.strip()
    return t if t in GOALS else GOAL_OF_TEXT.get(t)


@dataclass(frozen=True)
class Study2(Study):
    name: str = "study2"
    required_columns: tuple[str, ...] = ("Precontext", "Scenario", "Goal", "State", "SP_Name", "LS_Name")
    optional_columns: tuple[str, ...] = ("Participant_ID", "Domain", "Utterance")
    key_columns: tuple[str, ...] = ("Participant_ID", "Domain")
    prompt_version: str = "study2-exp1-v1"
    exp2_prompt_version: str = "study2-exp2-v1"
    description: str = "politeness judgments (Yoon, Tessler, Goodman & Frank 2020)"
    option_sets: dict[str, tuple[str, ...]] = field(default_factory=lambda: {"utterance": UTTERANCES})

    def check_row(self, row: Trial) -> str | None:
        if not _STATE_RE.match(row["State"].strip()):
            return f"column 'State': {row['State']!r} is not '0 hearts' .. '3 hearts'"
        if goal_label(row["Goal"]) is None:
            return f"column 'Goal': {row['Goal']!r} is not one of the three goal phrasings"
        pid = row.get("Participant_ID", "").strip()
        if pid and not pid.isdigit():
            return f"column 'Participant_ID': {pid!r} is not a whole number"
        return None

    def condition(self, trial: Trial) -> dict[str, str]:
        return {"goal": goal_label(trial["Goal"]) or "", "state": trial["State"].strip()}

    def _scenario(self, trial: Trial) -> str:
        sp = trial["SP_Name"].strip()
        goal = trial["Goal"].strip().replace("the listener", trial["LS_Name"].strip())
        return (
            f"{trial['Precontext'].strip()}\n{trial['Scenario'].strip()}\n"
            f"{sp} wanted {goal}.\n"
            f"What would {sp} be most likely to say?"
        )

    def exp1_messages(self, trial: Trial) -> Messages:
        options = "\n".join(f"- {u}" for u in UTTERANCES)
        user = (
            f"{self._scenario(trial)}\n\nChoose exactly one of these utterances:\n{options}\n\n"
            "Reply with the chosen utterance on the first line, then one sentence of reasoning."
        )
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]

    def exp2_questions(self, trial: Trial) -> list[Question]:
        options = ", ".join(f'"{u}"' for u in UTTERANCES)
        user = f"{self._scenario(trial)}\nAnswer with one of: {options}."
        msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
        return [Question("utterance", msgs, UTTERANCES)]
