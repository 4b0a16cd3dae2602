"""How well extraction reads real answers: accuracy per field and per stage against people's annotations.

The input is JSONL, one annotated answer a line: `trial_id`, `response` (the model's reply) and `gold` (what
people read from it, in the study's terms: for study 1 `initial_answer` 0-3 or null, `bets` the four amounts on
0..3 in the answer's own unit or null/empty, `knowledge` "yes"/"no" or null; the study's `Annotations`). A field
is correct when extraction gives what people gave, null included (an answer people could not read must stay
empty); numbers are compared within the study's tolerance. The stages scored are the rules alone and, given an
endpoint, rules then the LLM stage on what the rules left absent (as `grace extract` runs it), and the LLM alone
on every field with the same grounding check (`grace extract-eval FILE [--study S] [--model M | --llm-endpoint
URL --llm-model M]`, or `python -m grace.extract.evaluate FILE`).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from grace.checkpoint import LoadReport, read_objects
from grace.errors import DataError, UserInputError
from grace.extract import llm
from grace.extract.engine import Extracted, ExtractSummary, Reply, _merge, extract_rows
from grace.extract.plugin import Annotations, Extraction
from grace.extract.text import RuleResult
from grace.serving.base import Endpoint
from grace.studies.base import Study


@dataclass(frozen=True)
class AnnotatedAnswer:
    """One real answer and what people read from it, by answer field (None: people read none)."""

    trial_id: str
    response: str
    values: dict[str, Any]

    def gold(self, name: str) -> Any:
        return self.values.get(name)


def annotated_study(studies: Iterable[Study]) -> Study:
    """The one study among these that scores annotated answers (the default of `grace extract-eval --study`)."""
    able = [s for s in studies if s.extraction is not None and s.extraction.annotations]
    if len(able) != 1:
        names = ", ".join(s.name for s in able)
        raise UserInputError(f"name the study of the annotated answers with --study (one of: {names})")
    return able[0]


def _annotations(study: Study) -> tuple[Extraction, Annotations]:
    part = study.extraction
    if part is None or part.annotations is None:
        raise UserInputError(f"study {study.name!r} has no scoring of annotated answers")
    return part, part.annotations


def load_annotated(path: Path, study: Study, report: LoadReport | None = None) -> list[AnnotatedAnswer]:
    """The annotated answers of a JSONL file; a bad line is refused with its number and field."""
    path = Path(path)
    _, ann = _annotations(study)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    out: list[AnnotatedAnswer] = []
    for i, row in read_objects(path, report):  # a torn last line is left out (in `report`), any other bad one refused
        for key in ("trial_id", "response", "gold"):
            if key not in row:
                raise DataError(f"{path}: line {i}: no {key!r} field")
        if not isinstance(row["response"], str):
            raise DataError(f"{path}: line {i}, field 'response': not text")
        if not isinstance(row["gold"], dict):
            raise DataError(f"{path}: line {i}, field 'gold': not an object")

        def where(key: str, i: int = i) -> str:
            return f"{path}: line {i}, field 'gold.{key}'"

        out.append(AnnotatedAnswer(str(row["trial_id"]), row["response"], ann.read_gold(row["gold"], where)))
    if not out:
        raise DataError(f"{path}: no rows")
    return out


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


def score(items: list[AnnotatedAnswer], results: list[Extracted], stage: str, study: Study) -> StageScore:
    """Per-field accuracy of one stage's results against the annotations (same order)."""
    part, ann = _annotations(study)
    scores = {name: FieldScore() for name in part.answer_fields}
    mismatches = []
    for item, res in zip(items, results, strict=True):
        for name in part.answer_fields:
            got, want = ann.comparable(res.fields, name), item.gold(name)
            s = scores[name]
            s.total += 1
            both = got is not None and want is not None
            if (ann.same(name, got, want) if both else got is None and want is None):
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
    tolerance: float = 0.0
    torn: int = 0  # a torn last line of the file, left out

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "rows": self.rows, "llm_model": self.llm_model, "tolerance": self.tolerance,
                "stages": [{"stage": s.stage, "seconds": round(s.seconds, 3), "summary": s.summary,
                            "fields": {n: {**asdict(f), "accuracy": round(f.accuracy, 4)} for n, f in s.fields.items()},
                            "mismatches": s.mismatches} for s in self.stages]}


def _llm_only(part: Extraction, replies: list[Reply], endpoint: Endpoint, concurrency: int, max_tokens: int
              ) -> tuple[list[Extracted], ExtractSummary]:
    """The LLM stage asked for every field of every reply (as if the rules had read nothing), its values kept
    only where grounded in the reply: what the LLM could add on answers the rules cannot read."""
    summary = ExtractSummary(total=len(replies))
    answers = asyncio.run(llm.ask_many(endpoint, part, [r.response or "" for r in replies],
                                       concurrency=concurrency, max_tokens=max_tokens))
    out = []
    for reply, ans in zip(replies, answers, strict=True):
        blank = RuleResult({**part.rules(None).fields, "notes": []}, "unparseable", list(part.answer_fields))
        out.append(_merge(part, blank, reply.response or "", ans))
        summary.llm_errors += ans.values is None
        summary.llm_filled += out[-1].method == "llm"
    summary.llm_requests = len(replies)
    summary.status = dict(Counter(r.status for r in out))
    summary.method = dict(Counter(r.method for r in out))
    return out, summary


def evaluate(path: Path, study: Study, endpoint: Endpoint | None = None, *, concurrency: int = 16,
             max_tokens: int = 200) -> EvalReport:
    """Score the study's rules alone; with an endpoint also rules + the LLM stage (the LLM on what the rules found
    absent, as `grace extract` runs it) and the LLM alone on every field."""
    part, ann = _annotations(study)
    read = LoadReport()
    items = load_annotated(path, study, read)
    replies = [Reply(a.response, "stop") for a in items]
    stages = []
    runs: list[tuple[str, Endpoint | None]] = [("rules", None)]
    if endpoint is not None:
        runs += [("rules+llm", endpoint), ("llm-only", endpoint)]
    for name, ep in runs:
        t0 = time.perf_counter()
        if name == "llm-only" and ep is not None:
            results, summary = _llm_only(part, replies, ep, concurrency, max_tokens)
        else:
            results, summary = extract_rows(part, replies, ep, concurrency=concurrency, max_tokens=max_tokens)
        st = score(items, results, name, study)
        st.seconds = time.perf_counter() - t0
        st.summary = _summary(summary)
        stages.append(st)
    return EvalReport(str(path), len(items), stages, endpoint.model if endpoint else None, ann.tolerance,
                      torn=read.truncated)


def _summary(s: ExtractSummary) -> dict[str, Any]:
    return {"status": s.status, "method": s.method, "llm_requests": s.llm_requests, "llm_filled": s.llm_filled,
            "llm_errors": s.llm_errors}


def report_lines(rep: EvalReport) -> list[str]:
    """A plain table: one row per stage, accuracy per field (with wrong / missed / invented counts)."""
    fields = list(rep.stages[0].fields) if rep.stages else []
    head = f"{'stage':<10} " + " ".join(f"{n:>30}" for n in fields)
    lines = [f"{rep.file}: {rep.rows} annotated answers" + (f"; LLM stage: {rep.llm_model}" if rep.llm_model else ""),
             head]
    for st in rep.stages:
        cells = []
        for n in fields:
            f = st.fields[n]
            cells.append(f"{f.accuracy:6.1%} ({f.correct}/{f.total}; {f.wrong}w {f.missed}m {f.invented}i)")
        lines.append(f"{st.stage:<10} " + " ".join(f"{c:>30}" for c in cells))
        if st.stage != "rules":
            lines.append(f"{'':<10} llm: {st.summary['llm_requests']} replies asked, {st.summary['llm_filled']} "
                         f"filled, {st.summary['llm_errors']} errors, {st.seconds:.1f}s")
    lines.append("w = a different value, m = empty where people read a value, i = a value where people read none")
    if rep.torn:
        lines.append("note: the file's last line is torn (no newline, not JSON): left out")
    return lines


if __name__ == "__main__":  # python -m grace.extract.evaluate FILE [options]: the same as grace extract-eval
    from grace.cli import main

    sys.exit(main(["extract-eval", *sys.argv[1:]]))
