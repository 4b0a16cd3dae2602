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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

from grace.studies.base import AS_WRITTEN, MAIN, Layout, Messages, PromptVariant, Question, Study, Trial
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


@dataclass(frozen=True)
class Wording:
    """One prompt variant's own words; the scene and the goal come from the trial's cells, the same in all.

    Templates take {speaker}, {listener}, {state}, {scenario}, {options} (the list, as `item`s joined by
    `separator`) and {option}."""

    system: str
    state: str  # the true state, from State
    ask: str  # the question, a clause in lower case (grace/studies/study2/goals.py)
    exp1: str
    exp1_item: str
    exp2: str
    exp2_item: str
    exp2_separator: str = ", "


WORDINGS: dict[str, Wording] = {
    MAIN: Wording(  # the wording of prompt versions v2 (and, with the options in the study's order, exactly them)
        system=SYSTEM,
        state="{speaker}'s private rating was {state} out of 3.",
        ask="what would {speaker} be most likely to say",
        exp1=("{scenario}\n\nChoose exactly one of these utterances:\n{options}\n\n"
              "Reply with the chosen utterance on the first line, then one sentence of reasoning."),
        exp1_item="- {option}",
        exp2="{scenario}\nAnswer with one of: {options}.",
        exp2_item='"{option}"',
    ),
    "everyday": Wording(
        system=("This is a study of everyday conversation. Picture yourself in the situation described below "
                "and answer the way most people would."),
        state="Privately, {speaker} thought it deserved {state} on a scale from 0 to 3 hearts.",
        ask="which of these replies would {speaker} give {listener}",
        exp1=("{scenario}\n\nThe possible replies:\n{options}\n\n"
              "Write the reply you pick, exactly as it is written above, on the first line. Then say why in one "
              "sentence."),
        exp1_item="* {option}",
        exp2="{scenario}\nThe possible replies: {options}. Give only the reply.",
        exp2_item='"{option}"',
    ),
    "observer": Wording(
        system=("You will read about a short exchange between two people and then be asked what one of them "
                "says. Answer as a careful reader would."),
        state="{speaker}'s own rating, kept to themselves: {state} out of 3.",
        ask="which answer would {speaker} most likely give",
        exp1=("{scenario}\n\n{speaker} answers with one of the following sentences:\n{options}\n\n"
              "Which one is it? Copy it onto the first line, then explain in one sentence."),
        exp1_item='- "{option}"',
        exp2="{scenario}\nOptions: {options}.\nReply with the option, word for word.",
        exp2_item="{option}",
        exp2_separator=" / ",
    ),
}


def goal_label(text: str, names: tuple[str, ...] = ()) -> str | None:
    """informative / social / both for a Goal cell in any wording (see grace/studies/study2/goals.py), else None."""
    return classify_goal(text, tuple(names))


def state_label(text: str) -> str | None:
    """The canonical state ("0 hearts" .. "3 hearts") of a State cell ("2 hearts", "1 hearts", "heart2", "2")."""
    m = _STATE_RE.match(text)
    return STATES[_NUMBER[m["n"].lower()]] if m else None


def state_sentence(speaker: str, state: str, variant: str = MAIN) -> str:
    """The true state, in the same words on every row (of one wording)."""
    return WORDINGS[variant].state.format(speaker=speaker, state=state)


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
    permutable: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: {"utterance": UTTERANCES}, hash=False)
    exp1_variants: tuple[PromptVariant, ...] = (
        PromptVariant(MAIN, "study2-exp1-v2", "a psychology study; 'Choose exactly one of these utterances'"),
        PromptVariant("everyday", "study2-exp1-everyday-v1", "everyday conversation; 'The possible replies'"),
        PromptVariant("observer", "study2-exp1-observer-v1", "a reader's question about an exchange; quoted options"),
    )
    exp2_variants: tuple[PromptVariant, ...] = (
        PromptVariant(MAIN, "study2-exp2-v2", "a psychology study; 'Answer with one of: ...'"),
        PromptVariant("everyday", "study2-exp2-everyday-v1", "everyday conversation; 'The possible replies: ...'"),
        PromptVariant("observer", "study2-exp2-observer-v1", "a reader's question; 'Options: a / b / ...'"),
    )

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

    def scenario(self, trial: Trial, variant: str = MAIN) -> str:
        """The scene, the true state and the goal, ending with the question what the speaker would say."""
        sp, ls = _names(trial)
        state = state_label(trial["State"]) or trial["State"].strip()
        ask = WORDINGS[variant].ask.format(speaker=sp, listener=ls)
        return "\n".join((clean(trial["Precontext"]), clean(trial["Scenario"]), state_sentence(sp, state, variant),
                          goal_and_question(trial["Goal"], sp, ls, ask)))

    def context(self, trial: Trial) -> str:
        return self.scenario(trial)

    def _wording(self, trial: Trial, layout: Layout, experiment: str) -> tuple[Wording, dict[str, str]]:
        self.variant(experiment, layout.variant)  # a known wording, else a ValueError naming the known ones
        sp, ls = _names(trial)
        scene = self.scenario(trial, layout.variant)
        return WORDINGS[layout.variant], {"speaker": sp, "listener": ls, "scenario": scene}

    def exp1_messages(self, trial: Trial, layout: Layout = AS_WRITTEN) -> Messages:
        w, words = self._wording(trial, layout, "exp1")
        options = "\n".join(w.exp1_item.format(option=u) for u in layout.order("utterance", UTTERANCES))
        return [{"role": "system", "content": w.system},
                {"role": "user", "content": w.exp1.format(options=options, **words)}]

    def exp2_questions(self, trial: Trial, layout: Layout = AS_WRITTEN) -> list[Question]:
        w, words = self._wording(trial, layout, "exp2")
        order = layout.order("utterance", UTTERANCES)
        options = w.exp2_separator.join(w.exp2_item.format(option=u) for u in order)
        msgs = [{"role": "system", "content": w.system},
                {"role": "user", "content": w.exp2.format(options=options, **words)}]
        return [Question("utterance", msgs, order, order_of="utterance")]


__all__ = ["GOALS", "LABELS", "QUALITIES", "STATES", "UTTERANCES", "WORDINGS", "Quality", "Study2", "Utterance",
           "Wording", "goal_label", "state_label", "state_sentence"]
