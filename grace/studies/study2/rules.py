"""Rule-based reading of Study 2 replies: which of the 8 utterances ("It was/wasn't terrible/...") was chosen.

Where it looks, in order: a labelled answer ("Utterance:", "Answer:", "would say:"), then the first line that
names an utterance, then the whole reply. A place that names two different utterances is ambiguous and is
skipped for the next; an echoed list of the options is never read as a choice.
"""

from __future__ import annotations

import re

from grace.extract.text import RuleResult, decide_status, leftover_reasoning, normalise
from grace.studies.study2.study import UTTERANCES

_UTT = re.compile(
    r"\b(?:it\s*(?P<neg>wasn't|wasnt|was\s+not|isn't|is\s+not|'s\s+not|was|is|'s)|(?P<bare>wasn't|was\s+not|was))\s+"
    r"(?:(?:really|very|so|that|too|all\s+that)\s+)?(?P<adj>terrible|bad|good|amazing)\b",
    re.IGNORECASE,
)
_LABEL = re.compile(
    r"(?:(?:\b(?:chosen|final|my)\s+)?\b(?:utterance|answer|choice|response|reply)\s*[:\-]"
    r"|(?:\bwould|'d|\bwill|\bis|\bare)\s+(?:\w+\s+){0,3}?(?:say|respond|reply|choose|pick|go\s+with)\b"
    r"(?:\s+with)?(?:\s+the\s+(?:choice|option|utterance)(?:\s+of)?)?\s*:?"
    r"|^\s*i\s+(?:say|choose|pick)\b\s*:?)(?P<rest>[^\n]+)",
    re.IGNORECASE | re.MULTILINE,
)
_QUOTED = re.compile(r'"([^"\n]{5,40})"|(?<!\w)\'(it\s[^\n]{2,30}?)\'(?!\w)', re.IGNORECASE)
# "say X rather than Y": Y is the option turned down, not a second choice
_CONTRAST = re.compile(r"\b(?:rather\s+than|instead\s+of|as\s+opposed\s+to|over)\s+[\"']?it\b[^.;\n]*", re.IGNORECASE)
_OPTION_LIST_MIN = 4  # a place naming this many different utterances is an echoed option list
_ECHO_MIN = 2  # bullet lines holding nothing but a different utterance each: an echoed (part of the) list


def _utterance(m: re.Match[str]) -> str:
    verb = (m.group("neg") or m.group("bare") or "").lower()
    negated = "n't" in verb or "not" in verb or verb.endswith("nt")
    return f"It {'wasn' + chr(39) + 't' if negated else 'was'} {m.group('adj').lower()}"


def utterances_in(text: str) -> list[str]:
    """The distinct utterances named in `text`, in order of first mention."""
    return list(dict.fromkeys(_utterance(m) for m in _UTT.finditer(text)))


_LIST_LINE = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s*\"?(?P<u>[^\n]{0,25}?)\"?\s*[.,;]?\s*$")


def _drop_option_list(text: str) -> tuple[str, bool]:
    """The text without an echoed option list (4+ lines, each only one different utterance)."""
    lines = text.splitlines()
    only = [i for i, ln in enumerate(lines)
            if ln.strip() and (item := _LIST_LINE.match(ln)) and len(utterances_in(ln)) == 1
            and _UTT.fullmatch(item.group("u").strip())]
    if len({utterances_in(lines[i])[0] for i in only}) < _ECHO_MIN:
        return text, False
    return "\n".join(ln for i, ln in enumerate(lines) if i not in set(only)), True


def _labelled_place(rest: str) -> str:
    """After 'would say' / 'Answer:': the one quoted utterance if there is exactly one, else the first sentence."""
    rest = _CONTRAST.sub("", rest)
    quoted = list(dict.fromkeys(u for m in _QUOTED.finditer(rest) for u in utterances_in(m.group(1) or m.group(2))))
    if len(quoted) == 1:
        return quoted[0]
    return re.split(r"(?<=[.!?])\s", rest)[0]


def fields_for(utterance: str | None) -> dict:
    if utterance is None:
        return {"utterance": None, "polarity": None, "quality": None}
    assert utterance in UTTERANCES, utterance
    return {"utterance": utterance, "polarity": "negated" if "wasn't" in utterance else "affirmative",
            "quality": utterance.rsplit(" ", 1)[1]}


def extract_study2(response: str | None, finish_reason: str | None = None) -> RuleResult:
    """Read one Study 2 reply with rules only."""
    if response is None or not response.strip():
        why = ["empty response"]
        return RuleResult({**fields_for(None), "reasoning": None, "notes": why}, "unparseable", [], why)
    text, echoed = _drop_option_list(normalise(response))
    notes: list[str] = ["the list of options was echoed (ignored)"] if echoed else []
    chosen: str | None = None
    places = [_labelled_place(m.group("rest")) for m in _LABEL.finditer(text)]
    lines = [ln for ln in text.splitlines() if ln.strip()]
    first_naming = next((ln for ln in lines if utterances_in(ln)), None)
    places += [first_naming] if first_naming else []
    places.append(text)
    ambiguous: list[str] = []
    for place in places:
        found = utterances_in(place)
        if len(found) == 1:
            chosen = found[0]
            break
        if 1 < len(found) < _OPTION_LIST_MIN and not ambiguous:
            ambiguous = found
    flagged = False
    if chosen is None and ambiguous:
        notes.append(f"utterance: several named ({'; '.join(ambiguous)}), none singled out")
        flagged = True
    elif chosen is None and echoed:
        notes.append("utterance: only the list of options (or part of it), nothing chosen")
        flagged = True
    elif chosen is None and len(utterances_in(text)) >= _OPTION_LIST_MIN:
        notes.append("utterance: many named, none singled out")
        flagged = True
    fields = fields_for(chosen)
    if chosen and finish_reason == "length":
        notes.append("reply truncated by max_tokens (after the utterance)")
    elif finish_reason == "length":
        notes.append("reply truncated by max_tokens")
    chosen_line = chosen.lower() if chosen else None

    def is_answer(line: str) -> bool:
        found = utterances_in(line)
        return bool(found) and (len(found) > 1 or found[0].lower() == chosen_line) and len(line) < 80

    fields["reasoning"] = leftover_reasoning(text, is_answer)
    status = decide_status(1 if chosen else 0, 1, False, text)
    missing = ["utterance"] if chosen is None and not flagged and status != "refused" else []
    if status == "refused":
        notes.append("the reply refuses to answer")
    elif status == "unparseable" and not notes:
        notes.append("no utterance found")
    fields["notes"] = notes
    return RuleResult(fields, status, missing, notes, flagged)
