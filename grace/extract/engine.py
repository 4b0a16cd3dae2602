"""Extraction of whole tables: rules on every reply, then the LLM stage on what the rules found absent.

`extract_rows` is the core (a list of replies in, one result per reply out, same order); `extract_stage`
runs it on a run folder's `exp1.jsonl` as a stage of the skeleton (grace.stage, `ExtractionStage`) and writes
`extracted.jsonl` plus the tidy `extracted.parquet/.csv`.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from grace.checkpoint import Checkpoint
from grace.config import Retry
from grace.extract import llm
from grace.extract.plugin import Extraction, extraction_of
from grace.extract.text import RuleResult, decide_status
from grace.progress import Progress
from grace.records import Exp1Record, ExtractedRecord, ExtractionMethod, now
from grace.server_waits import record_waits
from grace.serving.base import Endpoint
from grace.serving.gate import Gate, StageStopped
from grace.stage import LocalStage, Write, run_local
from grace.statuses import ExtractionStatus
from grace.studies.base import Study

PROMPT_VERSION = "extract-v2"  # v2: rules read prose (grace/studies/study1/prose.py), grounding per answer segment


@dataclass
class Reply:
    response: str | None
    finish_reason: str | None = None


@dataclass
class Extracted:
    """One reply's result: the schema fields, status (ok/partial/unparseable/refused) and method (rules/llm)."""

    fields: dict[str, Any]
    status: ExtractionStatus
    method: ExtractionMethod
    rules_status: ExtractionStatus  # after the rule stage alone
    asked_llm: bool = False  # the reply went to the LLM stage (whether or not it kept a value)


@dataclass
class ExtractSummary:
    """Counts and timings of one extraction, for the CLI, the flow's artifact and the report."""

    total: int = 0
    rules_status: dict[str, int] = field(default_factory=dict)  # after the rule stage alone
    status: dict[str, int] = field(default_factory=dict)  # final
    method: dict[str, int] = field(default_factory=dict)
    llm_requests: int = 0  # replies sent to the LLM stage
    llm_filled: int = 0  # of those, replies where the LLM supplied at least one kept value
    llm_errors: int = 0
    waits: list[dict[str, Any]] = field(default_factory=list)  # the LLM stage's pauses for its server
    rules_s: float = 0.0
    llm_s: float = 0.0
    outputs: list[str] = field(default_factory=list)

    def line(self) -> str:
        def pct(d: dict[str, int]) -> str:
            return ", ".join(f"{k} {v} ({v / self.total:.0%})" for k, v in sorted(d.items())) if self.total else "-"

        return (f"{self.total} replies; rules: {pct(self.rules_status)} in {self.rules_s:.2f}s; "
                f"llm: {self.llm_requests} asked, {self.llm_filled} filled, {self.llm_errors} errors in "
                f"{self.llm_s:.1f}s; final: {pct(self.status)}; method: {pct(self.method)}")


def _merge(part: Extraction, rr: RuleResult, reply: str, answer: llm.LLMAnswer) -> Extracted:
    """Fill the rules' missing fields with grounded LLM values; everything else stays as the rules left it."""
    fields = dict(rr.fields)
    notes = list(rr.notes)
    used = False
    if answer.values is None:
        notes.append(f"llm: {answer.error}")
    else:
        for name in rr.missing:
            value = answer.values.get(name)
            if value is None:
                notes.append(f"llm: {name} not stated")
                continue
            if not part.grounded(name, value, reply):
                notes.append(f"llm: {name} {value!r} not found in the reply (dropped)")
                continue
            used |= part.put(name, value, fields, notes)
    found = sum(fields.get(f) is not None for f in part.answer_fields)
    flagged = rr.flagged or part.flagged(fields)
    status = decide_status(found, len(part.answer_fields), flagged, reply)
    fields["notes"] = notes
    return Extracted(fields, status, "llm" if used else "rules", rr.status)


def extracted_record(res: Extracted, *, trial_id: str, replicate: int, model: str, model_revision: str, study: str,
                     endpoint: Endpoint | None, started: datetime, finished: datetime,
                     inputs: dict[str, Any] | None = None) -> ExtractedRecord:
    """One reply's result as the record both the stage and `grace extract --input` write."""
    return ExtractedRecord(
        trial_id=trial_id, replicate=replicate, model=model, model_revision=model_revision, study=study,
        prompt_version=PROMPT_VERSION, status=res.status, method=res.method,
        extraction_model=endpoint.model if (endpoint is not None and res.asked_llm) else None,
        fields=res.fields, inputs=inputs or {}, started_at=started, finished_at=finished)


def extract_rows(
    part: Extraction, replies: list[Reply], endpoint: Endpoint | None = None, *, concurrency: int = 16,
    max_tokens: int = 200, retry: Retry | None = None, progress: Progress | None = None,
    gate: Gate | None = None,
) -> tuple[list[Extracted], ExtractSummary]:
    """The study's extraction `part` on every reply: its rules, then, with an endpoint, the LLM on replies whose
    answer fields the rules found absent (under `gate`, the server gate of grace.serving.gate, when given)."""
    summary = ExtractSummary(total=len(replies))
    t0 = time.perf_counter()
    ruled = [part.rules(r.response, r.finish_reason) for r in replies]
    out = [Extracted(r.fields, r.status, "rules", r.status) for r in ruled]
    summary.rules_s = time.perf_counter() - t0
    todo = [i for i, r in enumerate(ruled) if r.missing and r.status != "refused" and (replies[i].response or "")]
    if endpoint is None:
        todo = []
    if progress is not None:  # the rules settle everything the LLM is not asked about, at once
        progress(len(replies) - len(todo))
    if endpoint is not None and todo:
        t1 = time.perf_counter()
        gate = gate or Gate(endpoint)
        answers = asyncio.run(llm.ask_many(endpoint, part, [replies[i].response or "" for i in todo],
                                           concurrency=concurrency, max_tokens=max_tokens, retry=retry,
                                           progress=progress, gate=gate))
        summary.waits = [w.as_dict() for w in gate.waits]
        summary.llm_s = time.perf_counter() - t1
        summary.llm_requests = len(todo)
        for i, ans in zip(todo, answers, strict=True):
            out[i] = _merge(part, ruled[i], replies[i].response or "", ans)
            out[i].asked_llm = True
            summary.llm_errors += ans.values is None
            summary.llm_filled += out[i].method == "llm"
    for r in out:
        part.fields.model_validate(r.fields)  # the schema holds for every record written
    summary.rules_status = dict(Counter(r.status for r in ruled))
    summary.status = dict(Counter(r.status for r in out))
    summary.method = dict(Counter(r.method for r in out))
    return out, summary


def _conditions(study_dir: Path, study: Study) -> pd.DataFrame | None:
    """The design cell columns of the Exp 1 tidy table (the study's `condition_columns`), when it exists."""
    for name, reader in (("exp1.parquet", pd.read_parquet), ("exp1.csv", pd.read_csv)):
        p = study_dir / name
        if p.exists():
            df = reader(p)
            cols = [c for c in ("trial_id", "replicate", *study.condition_columns) if c in df.columns]
            if {"trial_id", "replicate"} <= set(cols):
                return df[cols].astype({"trial_id": str}).drop_duplicates(["trial_id", "replicate"])
    return None


class ExtractionStage(LocalStage[Exp1Record, ExtractedRecord]):
    """Extraction in the stage skeleton (grace.stage): one ExtractedRecord per Exp 1 record, in its order.

    Redone whole each time, not resumed: a record depends on its Exp 1 reply (a rerun of Exp 1 may have redone
    it) and on this call's LLM settings (a separate extraction model reads what a rules-only pass left). The new
    extracted.jsonl replaces the old one once every reply is read; a stop leaves the old one as it was."""

    experiment = "extract"
    file = "extracted.jsonl"
    record_type = ExtractedRecord
    resumable = False

    def __init__(self, study_dir: Path, study: Study, endpoint: Endpoint | None, *, concurrency: int,
                 max_tokens: int, retry: Retry | None) -> None:
        super().__init__(study.name)
        self.study = study
        self.part = extraction_of(study)
        self.study_dir = Path(study_dir)
        self.endpoint, self.concurrency, self.max_tokens, self.retry = endpoint, concurrency, max_tokens, retry
        self.sources = list(Checkpoint(self.study_dir / "exp1.jsonl", Exp1Record).load().values())
        self.rules_status: dict[str, ExtractionStatus] = {}  # the rule stage's status per key, for the table
        self.summary = ExtractSummary()

    def items(self) -> list[Exp1Record]:
        return self.sources

    def key(self, item: Exp1Record) -> str:
        return item.key

    def work(self, todo: list[Exp1Record], write: Write[ExtractedRecord], progress: Progress | None) -> int:
        started = now()
        replies = [Reply(r.response if r.status != "error" else None, r.finish_reason) for r in todo]
        gate = Gate(self.endpoint) if self.endpoint is not None else None
        try:
            results, self.summary = extract_rows(self.part, replies, self.endpoint,
                                                 concurrency=self.concurrency, max_tokens=self.max_tokens,
                                                 retry=self.retry, progress=progress, gate=gate)
        except StageStopped as e:
            raise type(e)(e.reason, f"LLM extraction stopped: {e}; nothing written, a rerun redoes it") from None
        finally:
            if gate is not None:
                record_waits(self.study_dir, self.experiment, gate.waits)
        finished = now()
        for rec, res in zip(todo, results, strict=True):
            if rec.status == "error":
                res.fields["notes"] = [f"no reply: the Exp 1 request failed ({rec.error or 'error'})"]
            elif rec.status == "reasoning_truncated":
                res.fields["notes"] = ["no answer: the reply ran out of tokens while reasoning"]
            write(extracted_record(res, trial_id=rec.trial_id, replicate=rec.replicate, model=rec.model,
                                   model_revision=rec.model_revision, study=self.study_name, endpoint=self.endpoint,
                                   started=started, finished=finished))
            self.rules_status[rec.key] = res.rules_status
        return self.summary.llm_requests

    def rows(self, record: ExtractedRecord) -> list[dict[str, Any]]:
        return [{"trial_id": record.trial_id, "replicate": record.replicate, "model": record.model,
                 "status": record.status, "method": record.method, "rules_status": self.rules_status[record.key],
                 "extraction_model": record.extraction_model, **self.part.flatten(record.fields)}]

    def frame(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        """The rows, with the design cell of each reply from the Exp 1 table."""
        df = pd.DataFrame(rows)
        cond = _conditions(self.study_dir, self.study)
        if cond is not None and not df.empty:
            df = df.merge(cond, on=["trial_id", "replicate"], how="left")
        return df


def extract_stage(
    study_dir: Path, study: Study, endpoint: Endpoint | None = None, *, concurrency: int = 16,
    max_tokens: int = 200, retry: Retry | None = None, progress: Progress | None = None,
) -> ExtractSummary:
    """Read study_dir/exp1.jsonl, write extracted.jsonl (one ExtractedRecord per Exp 1 key) and the tidy table."""
    stage = ExtractionStage(study_dir, study, endpoint, concurrency=concurrency, max_tokens=max_tokens, retry=retry)
    result = run_local(stage, study_dir, progress)
    stage.summary.outputs = [str(result.checkpoint)] + [str(p) for p in result.tables]
    return stage.summary
