"""Reading Study 1 answers stated in sentences: how many (0-3) a sentence says, and a knowledge judgement.

Real replies rarely open with the bare value: "it is highly likely that all three tickets have won", "two out of
three", "none of them"; "he does not know exactly how many ...", "it is unclear whether Jim knows ...". These
functions are general phrase rules (number words, quantifier phrases, negation, hedges, doubt), not lists of
sentences; the rule extractor and the LLM stage's grounding check share them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

WORD_VALUES = {"zero": 0, "none": 0, "one": 1, "two": 2, "three": 3, "0": 0, "1": 1, "2": 2, "3": 3}
N = r"(?:[0-3]|zero|one|two|three)"
_TIME = r"(?:seconds?|minutes?|hours?|days?|nights?|weeks?|months?|years?|times?|percent|%|dollars?)"
_AUX = r"(?:have|has|had|will|would|did|do|does|are|were|is|was|might|may|could|should|must|probably|likely|all)"
# numbers that name the set ("the 3 tickets", "of 3"), a time ("two days ago") or what was checked are not answers
_NOT_AN_ANSWER_BEFORE = re.compile(
    r"(?:\b(?:the|of|at|than|in|on|for|to|within|after|by|from|into|these|those|his|her|their|its)"
    r"|\b(?:looked\s+at|checked|seen|saw|examined|inspected|opened|observed|viewed|tested|scratched|"
    r"counted)(?:\s+(?:only|just|exactly))?)\s+$", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")


@dataclass(frozen=True)
class Count:
    """One count read from a sentence: an exact value, or a bound / alternatives (which answer no one number)."""

    value: int
    kind: str  # "exact" | "bound" | "alternatives"
    text: str


def word_value(word: str) -> int:
    return WORD_VALUES[word.lower()]


_ALTERNATIVES = re.compile(
    rf"\b({N})\s*(?:-|to|or|and/or)\s*(?:(?:perhaps|maybe|possibly|even|probably)\s+)?(?:all\s+)?({N})\b"
    rf"(?!\s*(?:{_TIME}|\$))", re.IGNORECASE)
_BOUND = re.compile(
    rf"\b(?:at\s+least|at\s+most|more\s+than|fewer\s+than|less\s+than|up\s+to|no\s+more\s+than|"
    rf"no\s+fewer\s+than|no\s+less\s+than|over|under)\s+({N})\b|\bnot\s+all\b|\bsome\s+of\b|\bmost\s+of\b",
    re.IGNORECASE)
_NOT_ALL = r"(?<!\bnot\s)(?<!almost\s)(?<!nearly\s)(?<!virtually\s)(?<!practically\s)"  # "almost all seeds sprout"
_PLURAL = (r"(?!(?:this|is|was|has|does|his|its|us|yes|as|thus|plus|less|unless|always|perhaps|depends|seems|means|"
           r"goes|comes|works|looks|points|sounds|makes|happens|remains|hinges|rests|boils|adds)\b)[a-z']+s\b")
_OWNER = r"(?:the\s+|his\s+|her\s+|their\s+|these\s+|those\s+|[a-z]+'s\s+)"
_ALL = re.compile(
    rf"{_NOT_ALL}\ball\s+(?:of\s+)?{_OWNER}?(?:(?:3|three)\b|them\b|{_PLURAL})"
    rf"|{_NOT_ALL}\bevery\s+(?:one|single\s+one|(?!(?:day|time|case|way|week|year|hour)\b)[a-z]+)\b"
    rf"|\beach\s+of\s+(?:them\b|{_OWNER})"
    rf"|\b(?:(?:they|these|those|{_PLURAL})\s+(?:have\s+|had\s+|will\s+|would\s+|are\s+|were\s+)?|"
    rf"(?:have|had|are|were)\s+)all\b(?!\s+(?:the|of|but|this|that|these|those|his|her|their|my|your|our)\b)",
    re.IGNORECASE)
_NONE = re.compile(
    r"\bnone\b|\bzero\b|\bnot\s+(?:a\s+single|any|one)\b|\bno\s+[a-z]+\s+(?:have|has|had|will|would|did|are|were"
    r"|is|was)\b", re.IGNORECASE)
_N_OF = re.compile(
    rf"\b({N})\s+(?:out\s+)?of\s+(?:the\s+|them\b|those\b|these\b|his\b|her\b|their\b|[a-z]+'s\b|(?:3|three)\b)"
    rf"|\b([0-3])\s*/\s*3\b(?!\s*(?:%|\.\d))",
    re.IGNORECASE)
_ONLY_N = re.compile(rf"\b(?:only|exactly|just|precisely)\s+({N})\b(?!\s*{_TIME})", re.IGNORECASE)
_N_VERB = re.compile(rf"\b({N})\s+((?:[a-z]+\s+){{0,2}}?){_AUX}\b", re.IGNORECASE)
_SAYS_N = re.compile(
    rf"\b(?:(?:guess|estimate|answer|number|count|say|think|expect|predict|believe|assume)\s+"
    rf"(?:is\s+|would\s+be\s+|will\s+be\s+|"
    rf"of\s+)?(?:that\s+)?|that\s+|(?:most\s+|very\s+)?(?:probably|likely|perhaps|maybe)[,:]?\s+)"
    rf"(?:(?:probably|about|around|roughly|only|exactly)\s+)?({N})\b"
    rf"(?!\s*(?:{_TIME}|\$|of\b|out\b|or\b|to\b|and\b|-))",
    re.IGNORECASE)


def _skip_number(sentence: str, start: int) -> bool:
    return bool(_NOT_AN_ANSWER_BEFORE.search(sentence[:start]))


def counts_in(sentence: str) -> list[Count]:
    """Every count one sentence states about how many (have the property), in order of position."""
    found: list[tuple[int, Count]] = []
    taken: list[tuple[int, int]] = []

    def add(m: re.Match[str], value: int, kind: str) -> None:
        found.append((m.start(), Count(value, kind, m.group(0))))
        taken.append(m.span())

    for m in _ALTERNATIVES.finditer(sentence):
        if not _skip_number(sentence, m.start()):
            add(m, word_value(m.group(1)), "alternatives")
    for m in _BOUND.finditer(sentence):
        add(m, word_value(m.group(1)) if m.group(1) else -1, "bound")

    def free(m: re.Match[str]) -> bool:
        return not any(a <= m.start() < b for a, b in taken)

    for m in _ALL.finditer(sentence):
        if free(m):
            add(m, 3, "exact")
    for m in _NONE.finditer(sentence):
        if free(m):
            add(m, 0, "exact")
    for pat in (_N_OF, _ONLY_N, _SAYS_N):
        for m in pat.finditer(sentence):
            group = next(i for i, g in enumerate(m.groups(), start=1) if g)  # the alternative that matched
            at = m.start() if pat is _ONLY_N else m.start(group)  # "only" itself may follow "looked at"
            if free(m) and not _skip_number(sentence, at):
                add(m, word_value(m.group(group)), "exact")
    for m in _N_VERB.finditer(sentence):
        word, between = m.group(1).lower(), m.group(2).strip()
        if not free(m) or _skip_number(sentence, m.start()) or re.match(rf"{_TIME}\b", between, re.IGNORECASE):
            continue
        if word == "one" and not between:  # "one would expect": the pronoun, not a count
            continue
        add(m, word_value(word), "exact")
    return [c for _, c in sorted(found, key=lambda x: x[0])]


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text) if s and s.strip()]


def count_from_prose(text: str) -> tuple[int | None, str | None]:
    """(value, problem): the count stated by the first sentence that states one.

    That sentence must state exactly one value; a bound ("at least two"), alternatives ("two or three") or two
    different values leave the answer empty with a problem (nothing is guessed).
    """
    for s in sentences(text):
        cs = counts_in(s)
        if not cs:
            continue
        if any(c.kind != "exact" for c in cs):
            odd = next(c for c in cs if c.kind != "exact")
            return None, f"not one number ({odd.text!r} gives a {'range' if odd.kind == 'bound' else 'choice'})"
        values = sorted({c.value for c in cs})
        if len(values) > 1:
            return None, f"several numbers in one sentence ({', '.join(map(str, values))})"
        return values[0], None
    return None, None


def mentions_count(text: str, value: int) -> bool:
    """Whether the text states `value` anywhere, in digits, words or phrases ("all three", "none of them")."""
    if re.search(rf"(?<![\d.]){value}(?!\.?\d)", text):
        return True
    words = [w for w, v in WORD_VALUES.items() if v == value and not w.isdigit()]
    if any(re.search(rf"\b{w}\b", text, re.IGNORECASE) for w in words):
        return True
    return any(c.value == value for s in sentences(text) for c in counts_in(s) if c.kind == "exact")


# ---- knowledge: does the speaker know exactly how many? ----

_STRONG = re.compile(
    r"(?:^|[.!?:]\s+|\b(?:the\s+answer\s+(?:is|would\s+be)|my\s+answer\s+is|so|therefore|thus|hence|then),?\s*)"
    r"[\"'(\[]*\b(?P<v>yes|no)\b(?!\s+(?:one|longer|more|less|way|information|idea|reason|doubt|evidence|[a-z]+s\b))"
    r"(?=\s*[,.!;:\-)\]\"']|\s*$|\s+(?:he|she|they|it|because|since|as|but)\b)",
    re.IGNORECASE | re.MULTILINE)
_KNOW = re.compile(
    r"\b(?:knows?|knowing|known|aware)\b(?=(?:\s+\w+){0,4}?\s+(?:exactly|how\s+many|the\s+(?:exact|total|precise|"
    r"full|final|actual|true)|the\s+(?:number|count|result|results|outcome|outcomes|status|state|condition|answer)|"
    r"for\s+(?:sure|certain)\s+how)\b|\s*(?:[.,;!]|$))"
    r"|\b(?:sure|certain)\s+(?:of\s+|about\s+)?(?:exactly\s+)?how\s+many\b"
    r"|\b(?:complete|full|exact|total|certain|precise|definitive)\s+(?:knowledge|information|certainty)\b",
    re.IGNORECASE)
_DOUBT = re.compile(
    r"\b(?:unclear|uncertain|unknown|undetermined|debatable|questionable|ambiguous|"
    r"not\s+(?:entirely\s+|completely\s+|fully\s+|totally\s+)?(?:certain|clear|sure|known|obvious|evident|possible\s+to"
    r"\s+(?:say|tell|know|determine))|"
    r"(?:hard|difficult|impossible)\s+to\s+(?:say|tell|determine|know|judge)|"
    r"can(?:not|'t|\s+not)\s+(?:\w+\s+)?(?:say|tell|determine|ascertain|conclude|confirm|be\s+(?:sure|certain))|"
    r"(?:no\s+way|not\s+enough\s+information)\s+to\s+(?:know|tell|say)|"
    r"(?:may|might|could)\s+or\s+(?:may|might|could)\s+not|whether\s+or\s+not)\b", re.IGNORECASE)
_NEGATION = re.compile(
    r"\b(?:not|never|no\s+longer|no\s+way|cannot|unlikely|impossible|only|without|neither|nor|hardly|barely)\b|n't\b",
    re.IGNORECASE)
_CLAUSE_START = re.compile(r"[,;:]\s+|\b(?:but|however|although|though|because|since|while|whereas|so)\s+",
                           re.IGNORECASE)
_VERB_CHAIN = re.compile(
    r"(?:\s+(?:does|do|did|doesn't|don't|didn't|not|can|cannot|can't|could|couldn't|would|wouldn't|might|may|will|"
    r"won't|should|must|really|actually|yet|definitively|definitely|exactly|probably|likely|truly|fully|only|still|"
    r"then|also|already|now|even|indeed|clearly|certainly|necessarily|is|be|being|been|fully|well))*\s*$",
    re.IGNORECASE)


def _subject(before: str) -> str:
    """The word just before the verb chain that ends `before` ("we cannot" -> "we", "that Jim does not" -> "jim")."""
    head = _VERB_CHAIN.sub("", " " + before)
    words = re.findall(r"[A-Za-z']+", head)
    return words[-1].lower() if words else ""


def judgments(text: str) -> list[str]:
    """The knowledge judgements of a text, in order: "yes", "no", or "unsure" (it says one cannot tell).

    A judgement is a clause about knowing exactly / how many ("Joe knows exactly ...", "he does not know the
    result", "it is unclear whether Jim knows ..."), or an explicit yes/no answer ("Yes, ...", "So, no, ...").
    What the reader (we, I, you) knows is not a judgement about the speaker.
    """
    out: list[tuple[int, str]] = [(m.start("v"), "strong-" + m.group("v").lower()) for m in _STRONG.finditer(text)]
    for s_match in re.finditer(r"[^.!?\n]+", text):
        sent = s_match.group(0)
        for m in _KNOW.finditer(sent):
            before = sent[:m.start()]
            starts = [c.end() for c in _CLAUSE_START.finditer(before)]
            clause = before[starts[-1]:] if starts else before
            pos = s_match.start() + m.start()
            if _DOUBT.search(before):
                out.append((pos, "unsure"))
                continue
            if _subject(clause) in ("we", "i", "you", "one", "anyone", "nobody") or re.search(
                    r"\b(?:as\s+far\s+as|for\s+all)\s+\w+\s*$", clause, re.IGNORECASE):
                continue
            out.append((pos, "no" if _NEGATION.search(clause) else "yes"))
    return [v for _, v in sorted(out)]


def knowledge_from_prose(text: str) -> tuple[str | None, str | None]:
    """(yes / no / None, problem) from sentences. An explicit yes/no wins (two different ones conflict); else
    the first judgement decides, except that "knows" next to a doubt or a "does not know" is a conflict, and a
    text that opens by saying it cannot tell gives no answer."""
    js = judgments(text)
    strong = list(dict.fromkeys(j.removeprefix("strong-") for j in js if j.startswith("strong-")))
    if len(strong) == 1:
        return strong[0], None
    if len(strong) > 1:
        return None, "both 'yes' and 'no'"
    if not js:
        return None, None
    if js[0] == "unsure":
        return None, "says it cannot tell whether the speaker knows"
    if js[0] == "yes" and any(j != "yes" for j in js):
        return None, "says the speaker knows, and also that he may not"
    return js[0], None
