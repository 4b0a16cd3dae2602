"""Study 2's Goal cell read by meaning (informative, social or both), and written into the prompt as a sentence.

Labs word the speaker's goal in many ways: Grace's own infinitives ("to make the listener feel good"), the
predecessor project's conditionals ("If Emma wanted to make Wendy feel good, rather than give informative
feedback"), plain labels ("informative", "social", "both"), or free phrasings ("Emma wants to be honest").
`classify_goal` reads the meaning from cues rather than from a list of exact strings:

- social cues: feel good / better / happy, nice, kind, polite, supportive, encouraging, spare someone's
  feelings...; informative cues: accurate, honest, informative, truthful, the truth, candid...
- opposites count through negation: "not hurt her feelings" and "without upsetting" are social,
  "not lie" and "without sugar-coating" informative; "not nice" is not social;
- what a goal is contrasted with is not part of it: "X rather than Y", "X instead of Y", "X over Y" (after
  prioritise / favour / value...), "X even if Y", "X regardless of Y", "would rather X than Y";
- both kinds of cue in what remains ("to BOTH make Wendy feel good AND give informative feedback",
  "to be honest and kind") is "both".
A cell with no cue (and not a plain label) is not classified: the loader refuses it, naming row and column.
"""

from __future__ import annotations

import re
from functools import lru_cache

from grace.studies.text import capitalize, clean

LABELS = ("informative", "social", "both")

# Grace's own phrasings of the three goals (the generator writes them; plain labels are rendered with them)
GOALS = {
    "informative": "to give accurate and informative feedback",
    "social": "to make the listener feel good",
    "both": "to BOTH make the listener feel good AND give accurate and informative feedback",
}

_PLAIN = re.compile(r"(?:(?:the\s+)?(?:speaker'?s?\s+)?goal\s*(?:is|was)?\s*[:=\-]?\s*)?"
                    r"(?P<label>informative|informational|information|info|social|both|both goals)\s*(?:goal)?")
_LABEL_OF = {"informative": "informative", "informational": "informative", "information": "informative",
             "info": "informative", "social": "social", "both": "both", "both goals": "both"}

_W = r"(?:[\w'-]+\s+){0,3}?"  # up to three words in between ("make Wendy really feel good")
_FEEL_GOOD = r"good|better|great|happy|nice|proud|positive|pleased|confident|comfortable|encouraged|valued|" \
             r"appreciated|special|loved|supported|respected|cared\s+for"
_FEEL_BAD = r"bad|sad|terrible|awful|worse|hurt|upset|disappointed|embarrassed|down|discouraged|rejected|stupid"

# (pattern, kind, polarity): polarity -1 marks the opposite of the goal ("hurt her feelings" is anti-social),
# which a negation turns into the goal itself. Opposites are matched first, so "hurt her feelings" is not
# also read as the social cue "feelings".
_CUES: tuple[tuple[str, str, int], ...] = (
    (rf"\bfeel\w*\s+{_W}(?:{_FEEL_BAD})\b", "social", -1),
    (rf"\b(?:hurt|upset|offend|discourag|embarrass|disappoint|crush|insult|humiliat|demorali[sz]|sadden|"
     rf"wound|belittl)\w*(?:\s+{_W}feelings)?", "social", -1),
    (r"\b(?:mean|rude|harsh|unkind|cruel|impolite|insensitive|tactless|brutal)\b", "social", -1),
    (r"\b(?:lie|lies|lying|lied|white\s+lie|mislead\w*|misled|deceiv\w*|decepti\w*|sugar-?\s?coat\w*|"
     r"exaggerat\w*|fib|fibs|fibbing|dishonest\w*|inaccura\w*|untru\w*|false\w*|fake\w*|pretend\w*)\b",
     "informative", -1),
    (rf"\bfeel\w*\s+{_W}(?:{_FEEL_GOOD})\b", "social", 1),
    (rf"\b(?:make|makes|making|made|keep|keeps|keeping)\s+{_W}(?:happy|smile|proud|confident|pleased|"
     rf"comfortable|good)\b", "social", 1),
    (rf"\b(?:spar|protect|consider|respect|mind|car)\w*\s+{_W}feelings\b", "social", 1),
    (rf"\b(?:boost|build|lift|rais|keep)\w*\s+{_W}(?:confidence|morale|self-esteem|spirits)\b", "social", 1),
    (r"\b(?:nice|nicely|niceness|kind(?!\s+of\b)|kindly|kindness|polite\w*|considerate\w*|supportive\w*|"
     r"support|encourag\w*|compliment\w*|prais\w*|reassur\w*|comfort\w*|cheer\w*|gentl\w*|warm\w*|tact|"
     r"tactful\w*|sensitiv\w*|friendl\w*|sweet\w*|caring|compassion\w*|empath\w*|social\w*|positiv\w*|"
     r"uplift\w*|flatter\w*|motivat\w*|feelings|happy|happiness|generous\w*|gracious\w*|diplomatic\w*|soften\w*)\b",
     "social", 1),
    (r"\bpleas(?:e|ing)\s+(?:someone|her|him|them)\b", "social", 1),
    (r"\b(?:accura\w*|honest\w*|inform|informs|informed|informing|informative\w*|information\w*|truth\w*|"
     r"true|candid\w*|frank\w*|sincer\w*|precis\w*|correct\w*|objectiv\w*|factual\w*|facts?|genuin\w*|"
     r"straightforward\w*|direct|directly|blunt\w*|realistic\w*|constructive\w*|useful\w*|helpful\w*|"
     r"fair|fairly|critic\w*|"
     r"critiqu\w*|transparen\w*|forthright\w*|unvarnished|upfront|up-front)\b", "informative", 1),
    (r"\b(?:real|actual|true|honest|exact)\w*\s+(?:opinion|assessment|rating|view|impression|evaluation|"
     r"thoughts?|judge?ment)\b", "informative", 1),
    (r"\breally\s+(?:thought|thinks|felt|feels|rated)\b", "informative", 1),
    (r"\b(?:how\s+good|how\s+well|what\s+\w+\s+(?:really|actually)\s+thought)\b", "informative", 1),
)
_CUE_RES = tuple((re.compile(p), kind, pol) for p, kind, pol in _CUES)

# What follows these is what the speaker does NOT aim at (to the end of the clause).
_CONTRAST = re.compile(r"\b(?:rather\s+than|instead\s+of|as\s+opposed\s+to|regardless\s+of|irrespective\s+of|"
                       r"no\s+matter|even\s+if|even\s+though|even\s+when|even\s+at|at\s+the\s+(?:expense|cost)\s+"
                       r"of|whether\s+or\s+not|more\s+than)\b")
_PREFER = re.compile(r"\b(?:priorit\w*|favou?r\w*|valu\w*|prefer\w*|put\w*|plac\w*|choos\w*|chose\w*|"
                     r"above\s+all)\b")
_OVER, _THAN, _RATHER = re.compile(r"\bover\b"), re.compile(r"\bthan\b"), re.compile(r"\b(?:rather|more)\b")
_CONTRAST_END = re.compile(r"[;.]|,\s*(?:and|but|while|yet)\b|\bbut\b")
_GOAL_AGAIN = re.compile(r"\b(?:want\w*|wish\w*|aim\w*|hop\w*|tr(?:y|ied|ies|ying)|goal|intend\w*|would|to)\b")
_NEGATOR = re.compile(r"\b(?:not|never|no|without|avoid\w*|refrain\w*|stop\w*|cannot|\w+n't)\b")
_NOT_ONLY = re.compile(r"\bnot\s+(?:only|just|merely|simply)\b")
_CLAUSE_START = re.compile(r"[,;.:]|\b(?:and|but|or|while|yet|so|because)\b")


def _mask(text: str, start: int, end: int) -> str:
    return text[:start] + " " * (end - start) + text[end:]


def _contrast_end(t: str, start: int, after: int) -> int:
    """Where a contrast ends: at the end of its clause, or at the next comma when it opens the goal or stands
    between commas and a new statement of the goal follows ('Rather than Y, X', 'If, rather than Y, she ...')."""
    before = t[:start].rstrip()
    comma = t.find(",", after)
    if comma >= 0 and (before in ("", "if") or before.endswith(",")) and _GOAL_AGAIN.search(t, comma):
        return comma
    e = _CONTRAST_END.search(t, after)
    return e.start() if e else len(t)


def _drop_contrasts(t: str) -> str:
    """Blank out what the goal is contrasted with: 'X rather than Y' keeps X."""
    pos = 0
    while True:
        m = _CONTRAST.search(t, pos)
        over = _OVER.search(t, pos) if _PREFER.search(t) else None
        than = _THAN.search(t, pos) if _RATHER.search(t) else None
        found = [x for x in (m, over, than) if x is not None]
        if not found:
            return t
        first = min(found, key=lambda x: x.start())
        end = _contrast_end(t, first.start(), first.end())
        t = _mask(t, first.start(), end)
        pos = end


def _negated(t: str, start: int) -> bool:
    clause_from = 0
    for m in _CLAUSE_START.finditer(t, 0, start):
        clause_from = m.end()
    return bool(_NEGATOR.search(t, clause_from, start))


def _normalise(text: str, names: tuple[str, ...]) -> str:
    t = clean(text).replace("\n", " ").replace("\u2019", "'").replace("\u2018", "'")
    for n in sorted({n.strip() for n in names if n and n.strip()}, key=len, reverse=True):
        t = re.sub(rf"\b{re.escape(n)}\b", "someone", t, flags=re.I)
    t = t.lower()
    return re.sub(r"\s+", " ", t).strip(" .!;:")


@lru_cache(maxsize=4096)
def classify_goal(text: str, names: tuple[str, ...] = ()) -> str | None:
    """informative / social / both for a Goal cell, whatever its wording; None when it says neither.

    `names` (the speaker's and listener's) are set aside first, so a listener called Frank or Joy is not a cue.
    """
    t = _normalise(text, names)
    plain = _PLAIN.fullmatch(t)
    if plain:
        return _LABEL_OF[plain["label"]]
    t = _NOT_ONLY.sub(lambda m: " " * len(m.group(0)), t)
    t = _drop_contrasts(t)
    kinds: set[str] = set()
    for rx, kind, polarity in _CUE_RES:
        for m in list(rx.finditer(t)):
            sign = -polarity if _negated(t, m.start()) else polarity
            if sign > 0:
                kinds.add(kind)
            t = _mask(t, m.start(), m.end())
    if kinds == {"informative", "social"}:
        return "both"
    if kinds:
        return kinds.pop()
    return "both" if re.fullmatch(r"(?:both|both goals|both of (?:these|them|the above))", t.strip()) else None


def plain_label(text: str) -> str | None:
    """The label when the cell is only a label ("informative", "Social", "goal: both"), else None."""
    m = _PLAIN.fullmatch(_normalise(text, ()))
    return _LABEL_OF[m["label"]] if m else None


# --- the goal as sentences of the prompt ----------------------------------------------------------------

_WANT = re.compile(r"^(?:wants|wanted|wanting|would\s+like|would\s+rather|hopes|hoped|hoping|aims|aimed|aiming|"
                   r"tries|tried|trying|intends|intended|intending|cares|cared|caring|means|meant|meaning|"
                   r"is\s+trying|was\s+trying|is\s+hoping|was\s+hoping|plans|planned|planning|needs|needed)\b")
_GERUND_PAST = {"wanting": "wanted", "hoping": "hoped", "aiming": "aimed", "trying": "tried",
                "intending": "intended", "caring": "cared", "meaning": "meant", "planning": "planned"}
_SUBJECT = re.compile(r"^(?:he|she|they|his|her|their|the\s+speaker|the\s+goal|goal)\b")
_VERB_FIRST = re.compile(  # first words of a bare verb phrase ("be honest", "make Wendy feel good")
    r"^(?:"
    r"be|make|give|tell|say|let|help|show|keep|offer|provide|share|spare|avoid|protect|encourage|support|"
    r"praise|compliment|please|inform|express|convey|report|communicate|stay|remain|sound|seem|get|have|"
    r"not|never|both|reassure|comfort|cheer|boost|build|criticize|criticise|flatter|speak|answer|respond|"
    r"reply|describe|point|admit|deliver|focus|put|treat|appear|state|stick|do|lift|raise|soften|sugarcoat|"
    r"sugar-coat|lie|prioritize|prioritise|choose|find|word|phrase|ensure|reflect"
    r")\b")


def _decap(text: str, names: tuple[str, ...] = ()) -> str:
    """First letter lower-cased unless the first word is one of `names` or in capitals ("BOTH")."""
    first = re.sub(r"'s$", "", text.split(" ", 1)[0])
    if (len(first) > 1 and first.isupper()) or first in names:
        return text
    return text[:1].lower() + text[1:]


_FINITE = (r"(?:\w+\s+)?(?:wants|wanted|would|hopes|hoped|aims|aimed|tries|tried|cares|cared|intends|intended|"
           r"is|was|prefers|preferred|values|valued|needs|needed|chooses|chose|decides|decided)\b")


def _has_clause(low: str, speaker: str) -> bool:
    """The cell holds a whole clause about the speaker ('Rather than be harsh, Emma wanted to be kind')."""
    subject = "|".join(x for x in (re.escape(speaker), "he", "she", "they") if x)
    return re.search(rf"\b(?:{subject})\s+{_FINITE}", low) is not None


def goal_text(goal: str, speaker: str, listener: str) -> str:
    """The cell with plain labels spelled out and 'the listener' / 'the speaker' replaced by the names."""
    g = re.sub(r"[\s.,;:!]+$", "", clean(goal).replace("\n", " ")).strip()
    g = re.sub(r"^(?:the\s+)?(?:speaker'?s?\s+)?goal\s*(?:[:=\-]|is\b|was\b)\s*", "", g, flags=re.I)
    label = plain_label(g)
    if label:
        g = GOALS[label]
    g = re.sub(r"\bthe listener\b", listener, g, flags=re.I)
    return re.sub(r"\bthe speaker\b", speaker, g, flags=re.I)


def goal_and_question(goal: str, speaker: str, listener: str, ask: str | None = None) -> str:
    """The speaker's goal and the question what they would say, as sentences whatever the cell's clause form.

    'If Emma wanted to X, rather than Y' -> 'If Emma wanted to X, rather than Y, what would Emma be most likely
    to say?'; 'to X' / 'X' (a verb phrase) -> 'Emma wanted to X.'; 'wants to X' -> 'Emma wants to X.';
    'Emma wants to X' / 'Her goal was X' -> as written; a noun phrase ('honesty') -> "Emma's goal was honesty.";
    each but the first followed by 'What would Emma be most likely to say?' on its own line. A cell that
    already ends with a question is taken as the question. `ask` words the question otherwise (a clause in lower
    case, without its question mark: a prompt variant's own words); by default "what would Emma be most likely
    to say".
    """
    g = goal_text(goal, speaker, listener)
    clause = ask or f"what would {speaker} be most likely to say"
    low = g.lower()
    sp = speaker.strip().lower()
    if g.endswith("?"):
        return capitalize(g)
    if re.match(r"if\b", low):
        return f"{capitalize(g)}, {clause}?"
    if low.startswith("to "):
        sentence = f"{speaker} wanted {_decap(g)}."
    elif sp and (low == sp or low.startswith((sp + " ", sp + "'s "))) or _SUBJECT.match(low) \
            or _has_clause(low, sp):
        sentence = capitalize(g) + "."
    elif _WANT.match(low):
        word, _, rest = g.partition(" ")
        sentence = f"{speaker} {_GERUND_PAST.get(word.lower(), _decap(word))} {rest}.".replace("  ", " ")
    elif _VERB_FIRST.match(low):
        sentence = f"{speaker} wanted to {_decap(g)}." if not low.startswith(("not ", "never ")) \
            else f"{speaker} wanted {_decap(g).replace(' ', ' to ', 1)}."
    else:
        sentence = f"{speaker}'s goal was {_decap(g, (speaker, listener))}."
    return f"{sentence}\n{capitalize(clause)}?"
