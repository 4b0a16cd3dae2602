"""Study 1, knowledge attribution (after Goodman & Stuhlmüller 2013, Experiment 2, number words).

A speaker looked at `access` of 3 objects and says how many (`observe`) have a property. Listeners say how
many have it before and after the statement, split 100% over the states 0-3, and judge whether the speaker
knows the exact number.

Prompts are built from what each column is for (setup, prior question, statement, posterior question,
knowledge question), whatever the lab's wording of the cells: markup and survey cues are removed, questions
and statements closed and introduced the same way on every row (grace/studies/text.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

from grace.studies.base import AS_WRITTEN, MAIN, Layout, Messages, PromptVariant, Question, Study, Trial
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
class Wording:
    """One prompt variant's own words around the lab's cells (setup, questions, statement: the same in all).

    Templates take {setup}, {prior}, {said}, {posterior}, {knowledge} (the cells) and {yes_no} (the knowledge
    question's two answers, in the layout's order: "yes or no" / "no or yes"). The reply format's labels
    (Initial Answer, Probabilities, Knowledge) are the same in every wording: the extraction reads them."""

    system: str
    exp1: str
    exp2_number: str  # after the prior and posterior questions
    exp2_knowledge: str  # after the knowledge question


WORDINGS: dict[str, Wording] = {
    MAIN: Wording(  # the wording of prompt versions v2 (with "yes or no", exactly them)
        system=SYSTEM,
        exp1=("{setup}\n\nQuestion 1: {prior}\n{said}\nQuestion 2: {posterior} Give a probability in % for each "
              "possible answer (0, 1, 2, 3), summing to 100%.\nQuestion 3: {knowledge} Answer {yes_no}.\n\n"
              "Reply in exactly this format, then add one or two sentences of reasoning:\n"
              "Initial Answer: <a number from 0 to 3>\nProbabilities: 0: <x>%, 1: <x>%, 2: <x>%, 3: <x>%\n"
              "Knowledge: <{yes_no}>"),
        exp2_number="Answer with a single number from 0 to 3.",
        exp2_knowledge="Answer {yes_no}.",
    ),
    "everyday": Wording(
        system=("This is a study of how people make sense of everyday statements. Read the short story, then "
                "answer the questions the way most people would."),
        exp1=("{setup}\n\nFirst question: {prior}\n{said}\nSecond question: {posterior} Spread 100% over the "
              "possible answers 0, 1, 2 and 3 to show how likely you find each.\nThird question: {knowledge} "
              "Say {yes_no}.\n\nStart your reply with exactly these three lines, then explain briefly:\n"
              "Initial Answer: <0, 1, 2 or 3>\nProbabilities: 0: <x>%, 1: <x>%, 2: <x>%, 3: <x>%\n"
              "Knowledge: <{yes_no}>"),
        exp2_number="Reply with one number: 0, 1, 2 or 3.",
        exp2_knowledge="Reply {yes_no}.",
    ),
    "observer": Wording(
        system=("You will read a short story in which someone makes a statement, and then say what you conclude "
                "from it. Answer as a careful reader would."),
        exp1=("{setup}\n\n(a) {prior}\n{said}\n(b) {posterior} For each of 0, 1, 2 and 3, say how likely it is "
              "in percent; the four numbers must add up to 100%.\n(c) {knowledge} The answer is {yes_no}.\n\n"
              "Give your answers first, in these three lines, and your reasons after them in a sentence or two:\n"
              "Initial Answer: <the number, 0-3>\nProbabilities: 0: <x>%, 1: <x>%, 2: <x>%, 3: <x>%\n"
              "Knowledge: <{yes_no}>"),
        exp2_number="Give just the number (0 to 3).",
        exp2_knowledge="Give just {yes_no}.",
    ),
}


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
    # yes/no may be listed either way; the 0-3 states keep their natural order
    permutable: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: {"knowledge": KNOWLEDGE}, hash=False)
    exp1_variants: tuple[PromptVariant, ...] = (
        PromptVariant(MAIN, "study1-exp1-v2", "a psychology study; 'Question 1/2/3'"),
        PromptVariant("everyday", "study1-exp1-everyday-v1", "everyday statements; 'First/Second/Third question'"),
        PromptVariant("observer", "study1-exp1-observer-v1", "what a careful reader concludes; '(a) (b) (c)'"),
    )
    exp2_variants: tuple[PromptVariant, ...] = (
        PromptVariant(MAIN, "study1-exp2-v2", "a psychology study; 'Answer with a single number from 0 to 3.'"),
        PromptVariant("everyday", "study1-exp2-everyday-v1", "everyday statements; 'Reply with one number'"),
        PromptVariant("observer", "study1-exp2-observer-v1", "a careful reader; 'Give just the number'"),
    )

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

    def _wording(self, layout: Layout, experiment: str) -> tuple[Wording, str]:
        """The layout's wording and the knowledge question's two answers in its order."""
        self.variant(experiment, layout.variant)  # a known wording, else a ValueError naming the known ones
        return WORDINGS[layout.variant], " or ".join(layout.order("knowledge", KNOWLEDGE))

    def exp1_messages(self, trial: Trial, layout: Layout = AS_WRITTEN) -> Messages:
        setup, prior, said, posterior, knowledge = self._parts(trial)
        w, yes_no = self._wording(layout, "exp1")
        user = w.exp1.format(setup=setup, prior=prior, said=said, posterior=posterior, knowledge=knowledge,
                             yes_no=yes_no)
        return [{"role": "system", "content": w.system}, {"role": "user", "content": user}]

    def exp2_questions(self, trial: Trial, layout: Layout = AS_WRITTEN) -> list[Question]:
        setup, prior, said, posterior, knowledge = self._parts(trial)
        w, yes_no = self._wording(layout, "exp2")

        def q(name: str, body: str, options: tuple[str, ...], order_of: str | None = None) -> Question:
            msgs = [{"role": "system", "content": w.system}, {"role": "user", "content": f"{setup}\n\n{body}"}]
            return Question(name, msgs, options, order_of)

        return [
            q("prior", f"{prior} {w.exp2_number}", STATES),
            q("posterior", f"{said}\n{posterior} {w.exp2_number}", STATES),
            q("knowledge", f"{said}\n{knowledge} {w.exp2_knowledge.format(yes_no=yes_no)}",
              layout.order("knowledge", KNOWLEDGE), "knowledge"),
        ]
