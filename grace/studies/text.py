"""Cell text as labs write it, made fit for a prompt: markup removed, sentences closed, statements quoted.

Stimulus CSVs come from survey tools and spreadsheets: line breaks as `<br>` (or `<br/>`, `<p>`, a literal
`\\n`), HTML entities, stray tags and spaces, questions with or without a question mark, sometimes with the
survey's own "Response:" cue after them. The studies build prompts from what a column is for (its role), so
these helpers turn any such cell into plain text, one sentence form, whatever the lab's wording.
"""

from __future__ import annotations

import html
import re

_BREAK = re.compile(r"<\s*br\s*/?\s*>|<\s*/?\s*p\s*>|<\s*/\s*div\s*>|\\n", re.I)
_TAG = re.compile(r"</?[a-zA-Z][^<>]*>")
_SPACES = re.compile(r"[ \t\u00a0]+")
_QUESTION_LABEL = re.compile(r"^(?:q(?:uestion)?\s*\d*\s*[:.)\-]\s*)", re.I)
_ANSWER_CUE = re.compile(  # "Response:" or "[Answer]" closing a question cell
    r"\s*(?:[(\[]\s*(?:your\s+)?(?:answer|response)\s*[)\]]|(?:your\s+)?(?:answer|response|reply)\s*:)\s*$", re.I)
_TERMINAL = (".", "?", "!", ":", '"', "\u201d", "'", "\u2019", ")")
_ASKING = re.compile(  # an interrogative opening the sentence, or its main clause after a lead-in ("And now, how")
    r"^(?:[^,]{0,60},\s*)?(?:how|what|which|who|whom|whose|when|where|why|does|do|did|is|are|was|were|can|could|"
    r"will|would|should|shall|has|have|had|may|might)\b", re.I)
QUOTES = "\"\u201c\u201d"


def clean(text: str) -> str:
    """Plain text: entities decoded, break tags (and literal \\n) as new lines, other tags dropped, spaces tidied."""
    t = html.unescape(text.replace("\r\n", "\n").replace("\r", "\n"))
    t = _TAG.sub("", _BREAK.sub("\n", t))
    lines = (_SPACES.sub(" ", line).strip() for line in t.split("\n"))
    return "\n".join(line for line in lines if line)


def close_sentence(text: str, mark: str = ".") -> str:
    """`text` ending in sentence punctuation (`mark` added when it has none)."""
    t = text.rstrip().rstrip(",;")
    return t if not t or t.endswith(_TERMINAL) else t + mark


def question(text: str) -> str:
    """A question cell as one closed question: without a leading 'Question 2:' label (the prompt numbers its
    questions) or a trailing 'Response:' cue (the prompt says how to answer); '?' added to a bare question."""
    t = _QUESTION_LABEL.sub("", clean(text)).strip()
    stripped = _ANSWER_CUE.sub("", t).strip()
    t = stripped or t
    last = re.split(r"(?<=[.!?])\s+", t)[-1]
    return close_sentence(t, "?" if _ASKING.match(last) else ".")


def quoted(text: str) -> str:
    """`text` in double quotes, unless it is already quoted."""
    t = text.strip()
    if t[:1] in QUOTES + "'\u2018" and t[-1:] in QUOTES + "'\u2019" and len(t) > 1:
        return t
    return f'"{t}"'


def capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


_SPEECH_VERB = (r"says|said|tells\s+you|told\s+you|tells\s+us|told\s+us|replies|replied|answers|answered|"
                r"reports|reported|announces|announced|explains|explained|writes|wrote|adds|added|"
                r"exclaims|exclaimed|states|stated|remarks|remarked")
_ATTRIBUTION = re.compile(  # up to five words naming the speaker, a speech verb, then what was said
    rf"^(?P<who>(?:[^{QUOTES}:.?!,\s]+\s+){{1,5}}?(?:{_SPEECH_VERB}))(?P<sep>\s*[:,]\s*|\s+)(?P<what>.+)$", re.I | re.S)
_LOWER_FIRST = re.compile(r"^(?:He|She|They|The|A|An|This|That|It|Your|His|Her|Their)\b")


def statement(text: str) -> str:
    """A statement cell as the sentence that introduces it: 'Then Ravi says: "..."' when the cell names the
    speaker ("Ravi says: I looked ..." or 'Ravi says, "I looked ..."'), else 'Then you hear this statement:
    "..."'. Indirect speech ("Ravi says that ...") stays as written."""
    s = clean(text).replace("\n", " ")
    m = _ATTRIBUTION.match(s)
    if m:
        who, what = m["who"].strip(), m["what"].strip()
        if _LOWER_FIRST.match(who):
            who = who[0].lower() + who[1:]
        if re.match(r"that\b", what, re.I):
            return f"Then {who} {close_sentence(what)}"
        return f"Then {who}: {quoted(close_sentence(what) if what[:1] not in QUOTES else what)}"
    if any(q in s for q in QUOTES):
        return f"Then you hear this: {close_sentence(s)}"
    return f"Then you hear this statement: {quoted(close_sentence(s))}"
