"""Grace's own stimuli (own wording) reproducing the published designs of both studies.

Study 1: 50 participants x 6 (access, observe) conditions, each condition once per participant, each with a
different cover story (a Latin square over the 6 stories). Study 2: 202 participants x 12 domains, each
participant seeing every goal x state cell once (a Latin square over the 12 cells). Deterministic (seeded).
Run `python -m grace.studies.generate --out data` to rewrite the committed CSVs.
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

from grace.studies.study1.study import CONDITIONS
from grace.studies.study2.study import GOALS, STATES

# story_shortname: (setup with {name}, plural noun, verb phrase in present perfect for plural, singular)
STORIES = {
    "seeds": (
        "{name} is a gardener who planted three seeds of a hardy bean variety last week.<br>"
        "Seeds of this variety almost always sprout within a week.",
        "seeds",
        "have sprouted",
        "has sprouted",
    ),
    "lottery": (
        "{name} runs a small shop that sold three scratch cards from a special charity series.<br>"
        "Cards from this series almost always win a small prize.",
        "cards",
        "have won a prize",
        "has won a prize",
    ),
    "exams": (
        "{name} is a teacher grading three exams from an advanced class.<br>"
        "Students in this class almost always get a passing grade.",
        "exams",
        "have a passing grade",
        "has a passing grade",
    ),
    "fruits": (
        "{name} works at a market stall that received three imported melons.<br>"
        "Melons shipped this way almost always arrive with a dried-out pith.",
        "melons",
        "have a dried-out pith",
        "has a dried-out pith",
    ),
    "phones": (
        "{name} repairs phones and got three old handsets from the same faulty batch.<br>"
        "Phones from this batch almost always have a burned-out transistor.",
        "phones",
        "have a burned-out transistor",
        "has a burned-out transistor",
    ),
    "letters": (
        "{name} sorts the mail for a charity that got three envelopes from its regular donors.<br>"
        "Envelopes from these donors almost always have a check inside.",
        "letters",
        "have a check inside",
        "has a check inside",
    ),
}

NAMES = [
    "Alice", "Bob", "Carmen", "David", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kira", "Liam",
    "Maya", "Nils", "Olga", "Pedro", "Quinn", "Rosa", "Sam", "Tara", "Umar", "Vera", "Wes", "Xenia",
    "Yusuf", "Zoe", "Amir", "Bea", "Chen", "Dana", "Emil", "Fay", "Gil", "Hana", "Ivan", "Jana", "Kofi",
    "Lena", "Marco", "Nora", "Omar", "Pia", "Ravi", "Sofia", "Theo", "Uma", "Victor", "Wanda", "Yara", "Zeke",
]

NUM_WORD = {0: "None", 1: "One", 2: "Two", 3: "Three"}

STUDY1_COLUMNS = [
    "participant_id", "story_shortname", "story_setup", "priorQ", "speach", "speachQ", "knowledgeQ",
    "access", "observe",
]
STUDY2_COLUMNS = ["Participant_ID", "Domain", "Precontext", "Scenario", "Utterance", "Goal", "State",
                  "SP_Name", "LS_Name"]

# domain: (what LS did, the thing SP is asked about, how SP came to judge it). The Scenario only sets the
# scene: the true state is in State alone (the prompt states it from there, as for a lab's own file).
DOMAINS = {
    "presentation": ("gave a presentation at work", "presentation", "was in the audience"),
    "cookie": ("baked cookies for a party", "cookies", "tried one"),
    "poem": ("wrote a poem", "poem", "read it"),
    "cake": ("baked a birthday cake", "cake", "had a slice"),
    "song": ("wrote a song", "song", "listened to it"),
    "film": ("made a short film", "film", "watched it"),
    "solo": ("played a cello solo at a concert", "solo", "was at the concert"),
    "dance": ("performed a dance at a festival", "dance", "watched it"),
    "painting": ("painted a landscape", "painting", "saw it"),
    "app": ("built a phone app", "app", "tried it out"),
    "review": ("wrote a book review for the school paper", "review", "read it"),
    "recital": ("gave a piano recital", "recital", "was in the audience"),
}
LISTENER_UTTERANCES = ["It was amazing", "It was good", "It was okay", "It wasn't bad", "It wasn't good",
                       "It wasn't terrible"]


def study1_rows(participants: int = 50, seed: int = 13) -> list[dict[str, object]]:
    rng = random.Random(seed)
    stories = list(STORIES)
    rows: list[dict[str, object]] = []
    for p in range(1, participants + 1):
        order = list(range(len(CONDITIONS)))
        rng.shuffle(order)
        for ci in order:
            access, observe = CONDITIONS[ci]
            short = stories[(ci + p) % len(stories)]
            setup, noun, plural_vp, singular_vp = STORIES[short]
            name = rng.choice(NAMES)
            vp = singular_vp if observe == 1 else plural_vp
            rows.append({
                "participant_id": p,
                "story_shortname": short,
                "story_setup": setup.format(name=name),
                "priorQ": f"Before {name} says anything, how many of the 3 {noun} do you think {plural_vp}?",
                "speach": f"{name} says: I have looked at {access} of the 3 {noun}. "
                          f"{NUM_WORD[observe]} of the {noun} {vp}.",
                "speachQ": f"Now, how many of the 3 {noun} do you think {plural_vp}?",
                "knowledgeQ": f"Does {name} know exactly how many of the 3 {noun} {plural_vp}?",
                "access": access,
                "observe": observe,
            })
    return rows


def study2_rows(participants: int = 202, seed: int = 29) -> list[dict[str, object]]:
    rng = random.Random(seed)
    cells = [(g, s) for g in GOALS for s in STATES]
    domains = list(DOMAINS)
    rows: list[dict[str, object]] = []
    for p in range(1, participants + 1):
        offset = rng.randrange(len(cells))
        order = list(range(len(domains)))
        rng.shuffle(order)
        for di in order:
            domain = domains[di]
            goal, state = cells[(di + offset) % len(cells)]
            sp, ls = rng.sample(NAMES, 2)
            did, thing, saw = DOMAINS[domain]
            was = "were" if thing.endswith("s") else "was"
            rows.append({
                "Participant_ID": p,
                "Domain": domain,
                "Precontext": f"Imagine that {ls} {did}, and {sp} {saw}.",
                "Scenario": f"Afterwards, {ls} asked {sp}: \"How {was} my {thing}?\"",
                "Utterance": rng.choice(LISTENER_UTTERANCES),
                "Goal": GOALS[goal],
                "State": state,
                "SP_Name": sp,
                "LS_Name": ls,
            })
    return rows


def write_csv(path: Path, columns: list[str], rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def sample_rows(rows: list[dict[str, object]], n: int = 10, seed: int = 7) -> list[dict[str, object]]:
    """A 10-row sample spread over the design (every k-th row, so several conditions are present)."""
    step = max(1, len(rows) // n)
    return rows[::step][:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path("data"))
    args = ap.parse_args()
    s1, s2 = study1_rows(), study2_rows()
    write_csv(args.out / "study1.csv", STUDY1_COLUMNS, s1)
    write_csv(args.out / "study1_sample.csv", STUDY1_COLUMNS, sample_rows(s1))
    write_csv(args.out / "study2.csv", STUDY2_COLUMNS, s2)
    write_csv(args.out / "study2_sample.csv", STUDY2_COLUMNS, sample_rows(s2))
    print(f"study1: {len(s1)} rows, study2: {len(s2)} rows -> {args.out}")


if __name__ == "__main__":
    main()
