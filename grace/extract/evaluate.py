"""How well extraction reads real answers: accuracy per field and per stage against people's annotations.

The input is JSONL, one annotated Study 1 answer a line: `trial_id`, `response` (the model's reply) and `gold`
(what people read from it: `initial_answer` 0-3 or null, `bets` the four amounts on 0..3 in the answer's own
unit or null/empty, `knowledge` "yes"/"no" or null). A field is correct when extraction gives what people gave,
null included (an answer people could not read must stay empty); bets are compared after normalising them to
sum to 1, each within `TOLERANCE`. The stages scored are the rules alone and, given an endpoint, rules then the
LLM stage on what the rules left absent (as `grace extract` runs it), and the LLM alone on every field with the
same grounding check (`grace extract-eval FILE [--model M | --llm-endpoint URL --llm-model M]`, or
`python -m grace.extract.evaluate FILE`).
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from grace.errors import DataError
from grace.extract import llm
from grace.extract.engine import Extracted, ExtractSummary, Reply, _merge, extract_rows
from grace.extract.rules_study1 import extract_study1
from grace.extract.text import RuleResult
from grace.serving.base import Endpoint

FIELDS = ("initial_answer", "probabilities", "knowledge")
TOLERANCE = 0.01


@dataclass(frozen=True)
class Annotated:
    """One real answer and what people read from it (probabilities normalised to sum to 1, or None)."""

    trial_id: str
    response: str
    initial_answer: int | None
    probabilities: tuple[float, float, float, float] | None
    knowledge: str | None

    def gold(self, name: str) -> Any:
        return getattr(self, name)


def _gold_field(path: Path, line: int, gold: dict[str, Any], name: str) -> Any:
    where = f"{path}: line {line}, field 'gold.{name}'"
    v = gold.get(name)
    if name == "initial_answer":
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 3):
            raise DataError(f"{where}: {v!r} is not a whole number from 0 to 3 or null")
        return v
    if name == "knowledge":
        if v is not None and v not in ("yes", "no"):
            raise DataError(f"{where}: {v!r} is not 'yes', 'no' or null")
        return v
    if not v:  # bets: null or [] = the answer gave none
        return None
    if (not isinstance(v, list) or len(v) != 4
            or not all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) and x >= 0
                       for x in v) or sum(v) <= 0):
        raise DataError(f"{where}: {v!r} is not four amounts >= 0 (on 0, 1, 2, 3) with a positive sum")
    total = float(sum(v))
    return tuple(x / total for x in v)


def load_annotated(path: Path) -> list[Annotated]:
    """The annotated answers of a JSONL file; a bad line is refused with its number and field."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    out: list[Annotated] = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: line {i}: not JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}: line {i}: not a JSON object")
        for key in ("trial_id", "response", "gold"):
            if key not in row:
                raise DataError(f"{path}: line {i}: no {key!r} field")
        if not isinstance(row["response"], str):
            raise DataError(f"{path}: line {i}, field 'response': not text")
        if not isinstance(row["gold"], dict):
            raise DataError(f"{path}: line {i}, field 'gold': not an object")
        gold = row["gold"]
        out.append(Annotated(str(row["trial_id"]), row["response"],
                             _gold_field(path, i, gold, "initial_answer"),
                             _gold_field(path, i, gold, "bets"),
                             _gold_field(path, i, gold, "knowledge")))
    if not out:
        raise DataError(f"{path}: no rows")
    return out


def _extracted(res: Extracted, name: str) -> Any:
    v = res.fields.get(name)
    if name == "probabilities" and v is not None:
        return tuple(v[s] for s in "0123")
    return v


def _same(name: str, got: Any, want: Any) -> bool:
    if got is None or want is None:
        return got is None and want is None
    if name == "probabilities":
        return all(abs(a - b) <= TOLERANCE for a, b in zip(got, want, strict=True))
    return bool(got == want)


@dataclass
class FieldScore:
    """One field at one stage: correct of total; wrong = a different value, missed = empty where people read
    one, invented = a value where people read none."""

    correct: int = 0
    total: int = 0
    wrong: int = 0
    missed: int = 0
    invented: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0


@dataclass
class StageScore:
    stage: str
    fields: dict[str, FieldScore]
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def score(items: list[Annotated], results: list[Extracted], stage: str) -> StageScore:
    """Per-field accuracy of one stage's results against the annotations (same order)."""
    scores = {name: FieldScore() for name in FIELDS}
    mismatches = []
    for item, res in zip(items, results, strict=True):
        for name in FIELDS:
            got, want = _extracted(res, name), item.gold(name)
            s = scores[name]
            s.total += 1
            if _same(name, got, want):
                s.correct += 1
                continue
            kind = "missed" if got is None else "invented" if want is None else "wrong"
            setattr(s, kind, getattr(s, kind) + 1)
            mismatches.append({"trial_id": item.trial_id, "field": name, "kind": kind, "method": res.method,
                               "extracted": got, "annotated": want, "notes": res.fields.get("notes", [])})
    return StageScore(stage, scores, mismatches)


@dataclass
class EvalReport:
    file: str
    rows: int
    stages: list[StageScore]
    llm_model: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "rows": self.rows, "llm_model": self.llm_model, "tolerance": TOLERANCE,
                "stages": [{"stage": s.stage, "seconds": round(s.seconds, 3), "summary": s.summary,
                            "fields": {n: {**asdict(f), "accuracy": round(f.accuracy, 4)} for n, f in s.fields.items()},
                            "mismatches": s.mismatches} for s in self.stages]}


def _llm_only(replies: list[Reply], endpoint: Endpoint, concurrency: int, max_tokens: int
              ) -> tuple[list[Extracted], ExtractSummary]:
    """The LLM stage asked for every field of every reply (as if the rules had read nothing), its values kept
    only where grounded in the reply: what the LLM could add on answers the rules cannot read."""
    summary = ExtractSummary(total=len(replies))
    answers = asyncio.run(llm.ask_many(endpoint, "study1", [r.response or "" for r in replies],
                                       concurrency=concurrency, max_tokens=max_tokens))
    out = []
    for reply, ans in zip(replies, answers, strict=True):
        blank = RuleResult({**extract_study1(None).fields, "notes": []}, "unparseable", list(FIELDS))
        out.append(_merge("study1", blank, reply.response or "", ans))
        summary.llm_errors += ans.values is None
        summary.llm_filled += out[-1].method == "llm"
    summary.llm_requests = len(replies)
    summary.status = dict(Counter(r.status for r in out))
    summary.method = dict(Counter(r.method for r in out))
    return out, summary


def evaluate(path: Path, endpoint: Endpoint | None = None, *, concurrency: int = 16, max_tokens: int = 200
             ) -> EvalReport:
    """Score the rules alone; with an endpoint also rules + the LLM stage (the LLM on what the rules found
    absent, as `grace extract` runs it) and the LLM alone on every field."""
    items = load_annotated(path)
    replies = [Reply(a.response, "stop") for a in items]
    stages = []
    runs: list[tuple[str, Endpoint | None]] = [("rules", None)]
    if endpoint is not None:
        runs += [("rules+llm", endpoint), ("llm-only", endpoint)]
    for name, ep in runs:
        t0 = time.perf_counter()
        if name == "llm-only" and ep is not None:
            results, summary = _llm_only(replies, ep, concurrency, max_tokens)
        else:
            results, summary = extract_rows("study1", replies, ep, concurrency=concurrency, max_tokens=max_tokens)
        st = score(items, results, name)
        st.seconds = time.perf_counter() - t0
        st.summary = _summary(summary)
        stages.append(st)
    return EvalReport(str(path), len(items), stages, endpoint.model if endpoint else None)


def _summary(s: ExtractSummary) -> dict[str, Any]:
    return {"status": s.status, "method": s.method, "llm_requests": s.llm_requests, "llm_filled": s.llm_filled,
            "llm_errors": s.llm_errors}


def report_lines(rep: EvalReport) -> list[str]:
    """A plain table: one row per stage, accuracy per field (with wrong / missed / invented counts)."""
    head = f"{'stage':<10} " + " ".join(f"{n:>30}" for n in FIELDS)
    lines = [f"{rep.file}: {rep.rows} annotated answers" + (f"; LLM stage: {rep.llm_model}" if rep.llm_model else ""),
             head]
    for st in rep.stages:
        cells = []
        for n in FIELDS:
            f = st.fields[n]
            cells.append(f"{f.accuracy:6.1%} ({f.correct}/{f.total}; {f.wrong}w {f.missed}m {f.invented}i)")
        lines.append(f"{st.stage:<10} " + " ".join(f"{c:>30}" for c in cells))
        if st.stage != "rules":
            lines.append(f"{'':<10} llm: {st.summary['llm_requests']} replies asked, {st.summary['llm_filled']} "
                         f"filled, {st.summary['llm_errors']} errors, {st.seconds:.1f}s")
    lines.append("w = a different value, m = empty where people read a value, i = a value where people read none")
    return lines


if __name__ == "__main__":  # python -m grace.extract.evaluate FILE [options]: the same as grace extract-eval
    from grace.cli import main

    sys.exit(main(["extract-eval", *sys.argv[1:]]))
