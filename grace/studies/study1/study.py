"""Study 1, knowledge attribution (after Goodman & Stuhlmüller 2013, Experiment 2, number words).

A speaker looked at `access` of 3 objects and says how many (`observe`) have a property. Listeners say how
many have it before and after the statement, split 100% over the states 0-3, and judge whether the speaker
knows the exact number.

Prompts are built from what each column is for (setup, prior question, statement, posterior question,
knowledge question), whatever the lab's wording of the cells: markup and survey cues are removed, questions
and statements closed and introduced the same way on every row (grace/studies/text.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from grace.studies.base import Messages, Question, Study, Trial
from grace.studies.text import clean, question, statement

State = Literal["0", "1", "2", "3"]  # how many (of 3) have the property
Knowledge = Literal["yes", "no"]  # does the speaker know exactly?
STATES: tuple[str, ...] = get_args(State)
KNOWLEDGE: tuple[str, ...] = get_args(Knowledge)
CONDITIONS = ((1, 1), (2, 1), (2, 2), (3, 1), (3, 2), (3, 3))  # (access, observe), observe <= access

SYSTEM = (
    "You are taking part in a psychology study about how people understand what others say. "
    "Read the story and answer the questions as a thoughtful participant would."
)

EXP1_FORMAT = (
    "Reply in exactly this format, then add one or two sentences of reasoning:\n"
    "Initial Answer: <a number from 0 to 3>\n"
    "Probabilities: 0: <x>%, 1: <x>%, 2: <x>%, 3: <x>%\n"
    "Knowledge: <yes or no>"
)
DEFAULT_KNOWLEDGE_Q = "Does the speaker know exactly how many have the property?"


@dataclass(frozen=True)
class Study1(Study):
    name: str = "study1"
    required_columns: tuple[str, ...] = ("story_setup", "priorQ", "speach", "speachQ")
    optional_columns: tuple[str, ...] = ("participant_id", "story_shortname", "knowledgeQ", "access", "observe")
    key_columns: tuple[str, ...] = ("participant_id", "story_shortname")
    condition_columns: tuple[str, ...] = ("access", "observe")
    prompt_version: str = "study1-exp1-v2"
    exp2_prompt_version: str = "study1-exp2-v2"
    description: str = "knowledge attribution (Goodman & Stuhlmüller 2013)"

    def check_row(self, row: Trial) -> str | None:
        access = row.get("access", "").strip()
        observe = row.get("observe", "").strip()
        if access or observe:
            if access not in {"1", "2", "3"}:
                return f"column 'access': {access!r} is not 1, 2 or 3"
            if observe not in {"0", "1", "2", "3"}:
                return f"column 'observe': {observe!r} is not 0-3"
            if int(observe) > int(access):
                return f"column 'observe': {observe} exceeds access {access}"
        pid = row.get("participant_id", "").strip()
        if pid and not pid.isdigit():
            return f"column 'participant_id': {pid!r} is not a whole number"
        return None

    def condition(self, trial: Trial) -> dict[str, str]:
        return {"access": trial.get("access", "").strip(), "observe": trial.get("observe", "").strip()}

    def knowledge_question(self, trial: Trial) -> str:
        q = trial.get("knowledgeQ", "").strip()
        return question(q) if q else DEFAULT_KNOWLEDGE_Q

    def _parts(self, trial: Trial) -> tuple[str, str, str, str, str]:
        """setup, prior question, the statement's sentence, posterior question, knowledge question."""
        return (clean(trial["story_setup"]), question(trial["priorQ"]), statement(trial["speach"]),
                question(trial["speachQ"]), self.knowledge_question(trial))

    def context(self, trial: Trial) -> str:
        setup, prior, said, posterior, knowledge = self._parts(trial)
        return f"{setup}\n\nQuestion 1: {prior}\n{said}\nQuestion 2: {posterior}\nQuestion 3: {knowledge}"

    def exp1_messages(self, trial: Trial) -> Messages:
        setup, prior, said, posterior, knowledge = self._parts(trial)
        user = (
            f"{setup}\n\n"
            f"Question 1: {prior}\n"
            f"{said}\n"
            f"Question 2: {posterior} Give a probability in % for each possible answer "
            f"(0, 1, 2, 3), summing to 100%.\n"
            f"Question 3: {knowledge} Answer yes or no.\n\n"
            f"{EXP1_FORMAT}"
        )
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]

    def exp2_questions(self, trial: Trial) -> list[Question]:
        setup, prior, said, posterior, knowledge = self._parts(trial)
        number = "Answer with a single number from 0 to 3."

        def q(name: str, body: str, options: tuple[str, ...]) -> Question:
            msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"{setup}\n\n{body}"}]
            return Question(name, msgs, options)

        return [
            q("prior", f"{prior} {number}", STATES),
            q("posterior", f"{said}\n{posterior} {number}", STATES),
            q("knowledge", f"{said}\n{knowledge} Answer yes or no.", KNOWLEDGE),
        ]
