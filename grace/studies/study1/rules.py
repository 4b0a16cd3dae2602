"""Rule-based reading of Study 1 replies: initial answer 0-3, bets over 0-3, knowledge yes/no.

Each field is looked for after its label ("Initial Answer:", "Probabilities:", "Knowledge:", "Question 2:",
"### Knowledge" on its own line, a numbered list item "3.", the keys of a JSON reply) wherever it stands in the
reply. A value opening the labelled segment wins ("Initial Answer: 2", "Knowledge: No, ..."); otherwise the
segment's sentences are read (`grace/studies/study1/prose.py`: "it is highly likely that all three ... have won",
"he does not know exactly how many ..."). Bets are state -> value pairs in any order and unit ("0: 10%",
"Option 2: $100", "$10 on 2 exams passing", "I'd put 70% on 3", "$0 on options 0 and 1", table rows); states
left unnamed are 0 only when the named bets already make the whole stake. An echoed question is never read as
an answer. Values that conflict, fall outside the allowed range, are ranges ("3-4", "at least two"), or a reply
cut inside its bets leave the field empty with a note; nothing is guessed.
"""

from __future__ import annotations

import json
import re
from typing import Any

from grace.extract.text import RuleResult, decide_status, leftover_reasoning, normalise
from grace.studies.study1.prose import count_from_prose, knowledge_from_prose

FIELDS = ("initial_answer", "probabilities", "knowledge")
NUMBER_WORDS = {"zero": 0, "none": 0, "no": 0, "one": 1, "two": 2, "three": 3, "all three": 3, "all 3": 3,
                "all": 3}
_SEP = r"\s*(?:\([^)\n]{0,30}\)\s*)?(?::|=|-(?!\d)|\bis\b|\bwould be\b)"
_LABELS = [
    ("initial_answer", r"initial\s+(?:answer|guess|estimate)|prior\s+(?:answer|guess)|answer\s+to\s+question\s*1"
                       r"|question\s*1|q1|answer\s*1"),
    ("probabilities", r"probabilit(?:y|ies)(?:\s+distribution)?|bets?|posterior(?:\s+probabilities)?"
                      r"|question\s*2|q2|answer\s*2"),
    ("knowledge", r"knowledge|question\s*3|q3|answer\s*3"),
    ("reasoning", r"reasoning|explanation|rationale"),
]
_LABEL_RE = re.compile(
    "(?:" + "|".join(f"(?P<{name}>\\b(?:{pat}))" for name, pat in _LABELS) + f")(?={_SEP})", re.IGNORECASE
)
_SEP_RE = re.compile(_SEP, re.IGNORECASE)
_LIST_ITEM = re.compile(r"^\s*(?:[-*]\s*)?([123])\s*[.)]\s+(.+)$", re.MULTILINE)
_HEDGE = re.compile(
    r"^(?:(?:i\s+(?:think|guess|believe|expect|estimate|would\s+(?:say|guess)|'d\s+(?:say|guess))|i'd\s+(?:say|guess)"
    r"|my\s+(?:best\s+)?(?:guess|estimate|answer)\s+(?:is|would\s+be)|(?:most|very|quite)\s+(?:likely|probably)"
    r"|probably|maybe|perhaps|likely|about|around|approximately|roughly)\s*[:,]?\s*)+", re.IGNORECASE)
_NUM = r"(?:\d+(?:\.\d+)?|\.\d+)"
_WORD_NUM = re.compile(r"^(all\s+three|all\s+3|zero|none|one|two|three|all)\b", re.IGNORECASE)
_RANGE_AFTER = re.compile(r"^\s*(?:-|to|or|/|and)\s*(?:\d|zero|one|two|three)", re.IGNORECASE)

_S = r"[ \t]"  # horizontal space: a pair never spans lines
_VAL = r"(?:\d+(?:\.\d+)?|\.\d+)"
# a state: "2", "two", "option 2", "P(2", "all three"; its value: "$30", "30%", "0.3", "30 percent"
_STATE = r"(?:[0-3]|zero|none|one|two|three|all\s+(?:three|3))"
# as a label before its value also "No seeds sprouted: $0", "All seeds sprouted: $80"
_STATE_LABEL = (r"(?:[0-3]|zero|none|one|two|three|all\s+(?:three|3)"
                rf"|no(?={_S}+[a-z])|all(?={_S}+(?:of{_S}+)?(?:the{_S}+)?[a-z]+s\b))")
_STATE_PREFIX = (rf"(?:(?:options?|states?|answers?|outcomes?|choices?|scenarios?|cases?|possibilit(?:y|ies))"
                 rf"{_S}*#?{_S}*)")
_STATE_TAIL = (rf"(?:{_S}+(?:out{_S}+)?of{_S}+(?:the{_S}+)?(?:3|three))?(?P<words>(?:{_S}+[a-z']+){{0,3}}?)"
               rf"{_S}*(?:\([^)\n]{{0,80}}\){_S}*)?")
_UNIT = r"(%|percent|\$|dollars?|usd)"
# state -> value: "0: 10%", "0 seeds sprouted: $0", "Option 2 (two won): $100", "P(0) = 0.1", "0. 10%"
_PAIR_SV = re.compile(
    rf"(?<![\w.$%-])(?:p{_S}*\({_S}*)?{_STATE_PREFIX}?(?P<state>{_STATE_LABEL})(?![.,]\d)(?:{_S}*\))?{_STATE_TAIL}"
    rf"(?P<sep>:|=|-(?!\d)|->|\u2192|\||\.(?={_S}))"
    rf"{_S}*(?P<neg>-?){_S}*(?P<dollar>\$)?{_S}*(?P<num>{_VAL}){_S}*(?P<unit>{_UNIT[1:-1]})?(?!{_S}*[:=\d]|\w)",
    re.IGNORECASE,
)
# "3 (30%)", "2 seeds ($40)"
_PAIR_PAREN = re.compile(
    rf"(?<![\w.$%])(?P<state>{_STATE})(?P<words>(?:{_S}+[a-z']+){{0,3}}?){_S}*\({_S}*(?P<neg>-?){_S}*"
    rf"(?P<dollar>\$)?{_S}*(?P<num>{_VAL}){_S}*(?P<unit>%|\$)?{_S}*\)",
    re.IGNORECASE,
)
# value -> state(s): "$30 on 2 fruits", "I'd put 70% on 3", "$0 on options 0, 1, and 2", "a 20% chance of 2"
_STATE_LIST = (rf"(?P<states>{_STATE}(?:{_S}*(?:,{_S}*(?:and|or|&)?|and|or|&){_S}*{_STATE_PREFIX}?{_STATE}"
               rf"(?![\w%$]|\.\d|{_S}*:))*)")
_PAIR_VS = re.compile(
    rf"(?P<neg>-(?=\$?\d))?(?<![\w.])(?P<dollar>\$)?{_S}*"
    rf"(?P<num>{_VAL}|nothing|no{_S}+money|zero|everything|all(?={_S}+(?:on|to)\b)){_S}*"
    rf"(?P<unit>{_UNIT[1:-1]})?{_S}+"
    rf"(?P<conn>on|for|to|that|(?:chance|probability|likelihood){_S}+(?:of|that|for|on))"
    rf"{_S}+(?:each{_S}+of{_S}+)?(?:the{_S}+)?(?:{_STATE_PREFIX}(?:(?:of|that){_S}+)?)?(?:(?:only|exactly|just){_S}+)?"
    rf"{_STATE_LIST}"
    rf"(?![\w%]|\.\d)",
    re.IGNORECASE,
)
_LIST_SPLIT = re.compile(rf"{_S}*(?:,{_S}*(?:and|or|&)?|and|or|&){_S}*{_STATE_PREFIX}?", re.IGNORECASE)
_SEQ4 = re.compile(
    rf"(?<![\d.:])(-?{_NUM})\s*(%?)\s*[,/;|]\s*(-?{_NUM})\s*(%?)\s*[,/;|]\s*(-?{_NUM})\s*(%?)\s*[,/;|]\s*"
    rf"(-?{_NUM})\s*(%?)(?![\d.])"
)
_KNOW_YES = re.compile(r"^(?:yes|true|y)\b|^(?:he|she|they|the\s+speaker|\w+)\s+(?:does\s+)?knows?\b",
                       re.IGNORECASE)
_KNOW_NO = re.compile(
    r"^(?:no|false|n)\b|^(?:he|she|they|the\s+speaker|\w+)\s+(?:does\s*not|doesn't|cannot|can't|do\s+not)\s+know",
    re.IGNORECASE)
_KNOW_UNSURE = re.compile(r"^(?:not\s+sure|unsure|uncertain|maybe|possibly|partly|partially|unclear|not\s+necessarily"
                          r"|it\s+depends|(?:yes|no)\s+and\s+(?:yes|no))\b", re.IGNORECASE)
_KNOW_BARE = re.compile(
    r"^(yes|no|true|false|y|n|not(?=\s+(?:exactly|really|quite|entirely)\b|\s*[.,;!\-]|\s*$)|unlikely|doubtful)\b"
    r"(?!\s+one\b)", re.IGNORECASE)
_THINK_SO = re.compile(r"^i\s+(?P<neg>don't\s+|do\s+not\s+)?(?:think|believe)\s+so\b", re.IGNORECASE)
_TEMPLATE = re.compile(r"<[^>]*>|yes\s*(?:or|/)\s*no", re.IGNORECASE)
_BARE_YESNO = re.compile(r"^\s*(?:[-*]\s*)?(yes|no)\s*[.!]?\s*$", re.IGNORECASE | re.MULTILINE)
_ANSWER_LINE = re.compile(
    "(?:" + "|".join(f"\\b(?:{pat})" for name, pat in _LABELS if name != "reasoning") + f")(?={_SEP})",
    re.IGNORECASE)


class _Field:
    """Candidate values for one field, from every place it was found."""

    def __init__(self) -> None:
        self.values: list[object] = []
        self.problems: list[str] = []

    def settle(self, name: str, notes: list[str]) -> tuple[object | None, bool, bool]:
        """(value, found, flagged): one distinct valid value wins; several conflict; none leaves problems."""
        distinct = []
        for v in self.values:
            if v not in distinct:
                distinct.append(v)
        if len(distinct) == 1:
            return distinct[0], True, False
        if len(distinct) > 1:
            notes.append(f"{name}: conflicting values {', '.join(_show(v) for v in distinct)}")
            return None, False, True
        if self.problems:
            notes.extend(f"{name}: {p}" for p in dict.fromkeys(self.problems))
            return None, False, True
        return None, False, False


def _show(v: object) -> str:
    if isinstance(v, tuple):
        return "/".join(f"{x:g}" for x in v[0])
    return str(v)


_HEADING = re.compile(
    r"^(\s*(?:#+\s*|\d+[.)]\s*)?(?:" + "|".join(pat for name, pat in _LABELS if name != "reasoning")
    + r"))\s*:?\s*$", re.IGNORECASE | re.MULTILINE)


def _segments(text: str) -> list[tuple[str, str]]:
    """(field, text after its label up to the next label) for every label found."""
    text = _HEADING.sub(r"\1:", text)  # a label alone on its line ("### Knowledge") labels the next line
    hits = list(_LABEL_RE.finditer(text))
    out = []
    for i, m in enumerate(hits):
        end = hits[i + 1].start() if i + 1 < len(hits) else len(text)
        rest = text[m.end():end]
        sep = _SEP_RE.match(rest)
        rest = rest[sep.end():] if sep else rest
        out.append((m.lastgroup or "", rest))
    return out


_ECHO_LABEL = re.compile(r"^(?:(?:my\s+)?(?:response|answer|reply)\s*[:\-]\s*)+", re.IGNORECASE)


def _clean_value(seg: str) -> str:
    s = _ECHO_LABEL.sub("", seg.strip().lstrip("[(\"'").strip())
    return _HEDGE.sub("", s)


def parse_initial(seg: str) -> tuple[int | None, str | None]:
    """(value, problem): the number opening a labelled segment, else the count its first sentence states."""
    s = _clean_value(seg)
    if not s:
        return None, None
    if s.startswith("<"):
        return None, "the template's placeholder was echoed"
    m = re.match(rf"^(-\s*)?({_NUM})(?!\s*(?:%|percent))", s)
    if m:
        after = s[m.end():]
        if _RANGE_AFTER.match(after):
            return None, f"a range or alternatives ({s[:m.end() + 6].split(chr(10))[0].strip()!r}), not one number"
        if m.group(1):
            return None, f"negative number {s[:m.end()]!r}"
        num = float(m.group(2))
        if num != int(num) or not 0 <= num <= 3:
            return None, f"{m.group(2)} is not a whole number from 0 to 3"
        return int(num), None
    w = _WORD_NUM.match(s)
    if w and not re.match(r"\s+(?:of\s+)?(?:the\s+|these\s+|this\s+)?(?:information|context|evidence|details)\b",
                          s[w.end():], re.IGNORECASE):
        word = re.sub(r"\s+", " ", w.group(1).lower())
        if _RANGE_AFTER.match(s[w.end():]):
            return None, f"a range or alternatives ({s[:w.end() + 6].strip()!r}), not one number"
        return NUMBER_WORDS[word], None
    return count_from_prose(s)


def _unit(markers: list[str], values: list[float]) -> str:
    joined = " ".join(m.lower() for m in markers if m)
    if "$" in joined or "dollar" in joined or "usd" in joined:
        return "dollars"
    if "%" in joined or "percent" in joined:
        return "percent"
    if all(v <= 1 for v in values) and abs(sum(values) - 1) <= 0.02:
        return "fraction"
    return "percent"


_STATE_VALUE = {"zero": "0", "none": "0", "no": "0", "one": "1", "two": "2", "three": "3"}


def _state(token: str) -> str:
    t = re.sub(r"\s+", " ", token.strip().lower())
    return "3" if t.startswith("all") else _STATE_VALUE.get(t, t)


def _number(num: str) -> float:
    """A bet's amount: digits, or "nothing" / "no money" / "zero" (0), "everything" / "all" (the whole 100)."""
    if num[0].isdigit() or num[0] == ".":
        return float(num)
    return 100.0 if num.lower() in ("everything", "all") else 0.0


_JSON_KEYS = (("Initial Answer", ("initial answer", "initial", "prior", "question 1", "q1", "answer 1")),
              ("Probabilities", ("probabilities", "probability", "bets", "posterior", "question 2", "q2", "answer 2")),
              ("Knowledge", ("knowledge", "knows", "question 3", "q3", "answer 3")))


def _json_layout(text: str) -> str:
    """A reply that answers in JSON ({"initial_answer": 3, "probabilities": [0, 10, 30, 60], ...}) rewritten in
    the labelled layout, so the same rules read it; any other text is returned as it is."""
    decoder = json.JSONDecoder(strict=False)
    for m in re.finditer(r"\{", text):
        try:
            data, end = decoder.raw_decode(text, m.start())
        except json.JSONDecodeError:
            continue
        if not isinstance(data, dict):
            continue
        keys = {re.sub(r"[\s_\-]+", " ", str(k)).strip().lower(): v for k, v in data.items()}
        lines = []
        for label, names in _JSON_KEYS:
            v = next((keys[n] for n in names if n in keys), None)
            if v is None:
                continue
            if isinstance(v, bool):
                v = "yes" if v else "no"
            elif isinstance(v, dict):
                v = ", ".join(f"{k}: {x}" for k, x in v.items())
            elif isinstance(v, list):
                v = ", ".join(str(x) for x in v)
            lines.append(f"{label}: {v}")
        if lines:
            return f"{text[:m.start()]}\n" + "\n".join(lines) + f"\n{text[end:]}"
    return text


def _pairs(seg: str) -> tuple[dict[str, list[float]], list[str], bool]:
    """State -> values found as labelled pairs, the unit markers seen, and whether a negative number was."""
    found: dict[str, list[float]] = {}
    markers: list[str] = []
    negative = False

    def put(state: str, m: re.Match[str]) -> None:
        nonlocal negative
        found.setdefault(_state(state), []).append(_number(m.group("num")))
        markers.extend([m.group("dollar") or "", m.group("unit") or ""])
        negative |= bool(m.group("neg"))

    for m in _PAIR_SV.finditer(seg):
        if m.group("sep") == "." and m.group("words").strip():
            continue  # "1 seed has sprouted. $0 ...": a sentence end, not "1. 10%"
        put(m.group("state"), m)
    for m in _PAIR_PAREN.finditer(seg):
        if _state(m.group("state")) not in found:
            put(m.group("state"), m)
    for m in _PAIR_VS.finditer(seg):
        keyword = not m.group("num")[0].isdigit() and m.group("num")[0] != "."
        if m.group("conn").lower() != "on" and not (m.group("dollar") or m.group("unit") or keyword):
            continue  # "from 0 to 3": no unit, so not a bet
        for state in _LIST_SPLIT.split(m.group("states")):
            if state.strip():
                put(state, m)
    return found, markers, negative


def parse_probabilities(seg: str, labelled: bool) -> tuple[tuple[list[float], str] | None, str | None]:
    """((raw values for 0..3, unit), problem). Unlabelled text needs explicit state -> value pairs.

    States left unnamed count as 0 when the named ones already make up the whole stake ("I would bet $100 on
    option 3"); otherwise a missing state leaves the bets empty (a reply cut short is not completed)."""
    found, markers, negative = _pairs(seg)
    if not found and labelled:
        m = _SEQ4.search(seg)
        if m:
            g = m.groups()
            nums = [g[0], g[2], g[4], g[6]]
            negative = any(n.startswith("-") for n in nums)
            found = {str(i): [abs(float(n))] for i, n in enumerate(nums)}
            markers = [g[1], g[3], g[5], g[7]]
    if not found:
        return None, None
    for state, vals in found.items():
        if len(set(vals)) > 1:
            return None, f"state {state} given two different values ({', '.join(f'{v:g}' for v in vals)})"
    if negative:
        return None, "a negative probability"
    absent = [s for s in "0123" if s not in found]
    if absent:
        named = [found[s][0] for s in "0123" if s in found]
        unit = _unit(markers, named)
        whole = sum(named) * (100 if unit == "fraction" else 1)
        if abs(whole - 100) > 1.0:
            return None, f"no value for state(s) {', '.join(absent)} (only {len(found)} of 4)"
        found.update({s: [0.0] for s in absent})
    raw = [found[s][0] for s in "0123"]
    return (raw, _unit(markers, raw)), None


def parse_knowledge(seg: str) -> tuple[str | None, str | None]:
    """(yes / no / None, problem): a yes or no opening the segment, else the judgement its sentences make."""
    s = _clean_value(seg)
    if not s:
        return None, None
    if _TEMPLATE.match(s) or s.lower().startswith(("yes or no", "yes/no")):
        return None, "the template's 'yes or no' was echoed"
    if _KNOW_UNSURE.match(s):
        return None, f"not a yes or no ({s.split(chr(10))[0][:30]!r})"
    think = _THINK_SO.match(_ECHO_LABEL.sub("", seg.strip()))
    if think:
        return ("no" if think.group("neg") else "yes"), None
    bare = _KNOW_BARE.match(s)
    if bare:
        return ("yes" if bare.group(1).lower() in ("yes", "true", "y") else "no"), None
    value, problem = knowledge_from_prose(s)
    if value or problem:
        return value, problem
    no, yes = _KNOW_NO.match(s), _KNOW_YES.match(s)
    if no and not yes:
        return "no", None
    if yes and not no:
        return "yes", None
    return None, None


def _probability_fields(raw: list[float], unit: str, notes: list[str]) -> tuple[dict | None, bool]:
    """(fields, flagged). Percent-equivalent sum, normalised probabilities; a sum other than 100 is flagged."""
    scale = 100.0 if unit == "fraction" else 1.0
    pct = [v * scale for v in raw]
    total = sum(pct)
    out: dict = {"probabilities_raw": raw, "probabilities_unit": unit, "probabilities_sum": round(total, 6)}
    if total <= 0:
        notes.append("probabilities: all zero")
        return {**out, "sums_to_100": False}, True
    if any(v > 100 for v in pct):
        notes.append("probabilities: a value above 100%")
        return {**out, "sums_to_100": False}, True
    ok = abs(total - 100) <= 1.0
    out["sums_to_100"] = ok
    out["probabilities"] = {s: v / total for s, v in zip("0123", pct, strict=True)}
    if not ok:
        notes.append(f"probabilities: sum to {total:g}% (normalised)")
    return out, not ok


def extract_study1(response: str | None, finish_reason: str | None = None) -> RuleResult:
    """Read one Study 1 reply with rules only."""
    empty: dict[str, Any] = {"initial_answer": None, "probabilities": None, "probabilities_raw": None,
                             "probabilities_unit": None, "probabilities_sum": None, "sums_to_100": None,
                             "knowledge": None, "reasoning": None}
    if response is None or not response.strip():
        return RuleResult({**empty, "notes": ["empty response"]}, "unparseable", [], ["empty response"])
    text = _json_layout(normalise(response))
    cands = {f: _Field() for f in FIELDS}
    labelled = {f: False for f in FIELDS}
    reasoning_parts: list[str] = []
    for name, seg in _segments(text):
        if name == "reasoning":
            reasoning_parts.append(seg.strip())
            continue
        labelled[name] = True
        _read(name, seg, cands[name], labelled=True)
    for m in _LIST_ITEM.finditer(text):  # "1. 2" / "2. 0: 10%, ..." / "3. No" when no label was used
        name = FIELDS[int(m.group(1)) - 1]
        if not labelled[name] and not _ANSWER_LINE.search(m.group(2)):
            _read(name, m.group(2), cands[name], labelled=True)
    if not labelled["probabilities"] and not cands["probabilities"].values and not cands["probabilities"].problems:
        _read("probabilities", text, cands["probabilities"], labelled=False)
    if not labelled["knowledge"] and not cands["knowledge"].values:
        bare = {m.group(1).lower() for m in _BARE_YESNO.finditer(text)}
        if len(bare) == 1:
            cands["knowledge"].values.append(bare.pop())
        elif len(bare) > 1:
            cands["knowledge"].problems.append("both a bare 'yes' and a bare 'no' line")

    notes: list[str] = []
    fields = dict(empty)
    found, flagged, missing = 0, False, []
    for name in FIELDS:
        value, ok, bad = cands[name].settle(name, notes)
        flagged |= bad
        if not ok:
            if not bad:
                missing.append(name)
            continue
        if name == "probabilities" and isinstance(value, tuple):  # parse_probabilities' (numbers, unit)
            raw, unit = value
            probs, pflag = _probability_fields(raw, unit, notes)
            fields.update(probs or {})
            flagged |= pflag
            if fields["probabilities"] is None:
                continue
        else:
            fields[name] = value
        found += 1
    if finish_reason == "length" and (missing or flagged):
        notes.append("reply truncated by max_tokens")
    reasoning = "\n".join(p for p in reasoning_parts if p) or leftover_reasoning(text, _is_answer_line)
    fields["reasoning"] = reasoning
    status = decide_status(found, len(FIELDS), flagged, text)
    if status == "refused":
        missing = []
        notes.append("the reply refuses to answer")
    elif status == "unparseable" and not notes:
        notes.append("no answer found")
    fields["notes"] = notes
    return RuleResult(fields, status, missing, notes, flagged)


def answer_text(response: str, name: str) -> str:
    """The part of a reply that answers field `name`: its labelled segments, or the whole reply if none.

    The LLM stage's values are checked against this (a "1" from "Option 1: $0" does not ground an initial
    answer whose labelled segment says "all three")."""
    text = _json_layout(normalise(response))
    segs = [seg for field_name, seg in _segments(text) if field_name == name]
    return "\n".join(segs) if segs and any(s.strip() for s in segs) else text


def _is_answer_line(line: str) -> bool:
    return bool(_ANSWER_LINE.search(line) or _PAIR_SV.search(line) or _PAIR_VS.search(line)
                or _BARE_YESNO.match(line) or _LIST_ITEM.match(line))


def _read(name: str, seg: str, cand: _Field, labelled: bool) -> None:
    v: object | None  # the field's value: an option number, (numbers, unit) or yes/no
    p: str | None  # the problem found instead, if any
    if name == "initial_answer":
        v, p = parse_initial(seg)
    elif name == "probabilities":
        v, p = parse_probabilities(seg, labelled)
    else:
        v, p = parse_knowledge(seg)
    if v is not None:
        cand.values.append(v)
    if p:
        cand.problems.append(p)
