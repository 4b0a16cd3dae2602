"""Every status Grace writes to disk, in one place: per record (each stage's JSONL line) and per run folder.

A record's status is `ok` or a named failure; a resume skips every record but `error`. Readers (report,
comparison, plots) match these strings, so a new status is added here, and the type checker finds each writer.
"""

from __future__ import annotations

from typing import Literal, get_args

# Exp 1 (grace.query.classify): a chat reply, or why it is not an answer. error: the request failed after all
# retries (redone on resume); reasoning_truncated: the token budget ran out while the model was still reasoning.
Exp1Status = Literal["ok", "error", "empty", "truncated", "reasoning_truncated"]

# Exp 2 scoring failures (grace.scoring.errors.ScoringError): a named per-row status instead of a silent zero.
ScoringFailure = Literal["bad_option", "context_overflow", "no_logprobs", "rejected", "error"]
Exp2Status = Literal["ok", ScoringFailure]

# Extraction (grace.extract.text.decide_status): every answer field read, some, or none (a refusal or not).
ExtractionStatus = Literal["ok", "partial", "unparseable", "refused"]
EXTRACTION_STATUSES: tuple[ExtractionStatus, ...] = get_args(ExtractionStatus)

RecordStatus = Literal[Exp1Status, Exp2Status, ExtractionStatus]

# How a stage's pause for its server ended (grace.serving.gate, server-waits.jsonl): the server came back, it was
# lost (gone, or not back in time), or it rejected the stage's first requests alike.
WaitOutcome = Literal["back", "lost", "rejected"]

# A run folder's run.json (grace.run.RunFolder).
RunStatus = Literal["running", "completed", "failed"]
