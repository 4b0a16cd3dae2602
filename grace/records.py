"""Pydantic records written to disk, one per stage, one JSONL line per key; and the server waits of a stage.

Every record carries the trial key, model and revision, study, experiment, prompt version, a status (`ok`
or a named failure), the attempt count and timestamps; then its stage's fields. Exp 1 and Exp 2 records also
keep exactly what was sent, so any result can be audited and recomputed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from grace.config import ScoringPath
from grace.statuses import Exp1Status, Exp2Status, ExtractionStatus, RecordStatus, WaitOutcome

ExtractionMethod = Literal["rules", "llm"]  # what settled an extracted record: the rules alone, or an LLM value too


def now() -> datetime:
    return datetime.now(UTC)


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trial_id: str
    model: str
    model_revision: str
    study: str
    prompt_version: str
    status: RecordStatus = "ok"  # "ok" or a named failure, "error" redone on resume (each stage's in grace.statuses)
    error: str | None = None
    attempts: int = 1
    started_at: datetime = Field(default_factory=now)
    finished_at: datetime = Field(default_factory=now)

    @property
    def key(self) -> str:
        return self.trial_id

    @property
    def done(self) -> bool:
        """Complete: a resume skips it. Failed requests (status error) are redone."""
        return self.status != "error"


class Exp1Record(Record):
    status: Exp1Status = "ok"
    replicate: int = 0
    messages: list[dict[str, str]]
    sampling: dict[str, Any]
    served_model: str = ""
    response: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning: str | None = None  # a reasoning model's analysis before its answer (not part of `response`)
    reasoning_tokens: int | None = None  # of completion_tokens, those spent reasoning (when the server counts them)
    latency_s: float | None = None

    @property
    def key(self) -> str:
        return f"{self.trial_id}#{self.replicate}"


class OptionScores(BaseModel):
    """One Exp 2 question: per option the summed log-probability, its token ids and count."""

    model_config = ConfigDict(extra="forbid")

    prompt: str  # the scored prompt text after the chat template, ending where the answer begins
    options: list[str]
    token_ids: dict[str, list[int]]
    token_logprobs: dict[str, list[float]] = {}  # per option token, given the prompt and earlier option tokens
    logprobs: dict[str, float]  # sum over the option's tokens
    probs: dict[str, float]  # softmax over options of the summed log-probabilities (sums to 1)
    probs_norm: dict[str, float]  # softmax of per-token mean log-probabilities (length-normalised)
    entropy: float  # of `probs`, in nats
    argmax: str
    argmax_norm: str = ""  # argmax of the length-normalised scores
    boundary_fallback: list[str] = []  # options tokenized alone: in context they changed the prompt's tokens
    # The probability the model put on the options at all (sum of exp(logprob), before renormalising): near 1 when
    # the prompt ends where an answer begins; small when the scoring position is wrong (e.g. before a channel or
    # role header the model emits first), where `probs` still sums to 1 but means nothing.
    option_mass: float | None = None


class Exp2Record(Record):
    status: Exp2Status = "ok"
    path: ScoringPath = "server"
    questions: dict[str, OptionScores] = {}
    requests: int = 0  # server requests (or forward passes) this trial cost
    reads: int = 0  # prompts the server scored, one generated token each (a request carries several)
    sequences: int = 0  # token sequences scored (in-process: prompt+option rows in the forward batches)
    latency_s: float | None = None


class ExtractedRecord(Record):
    """A structured answer read from an Exp 1 response; schema fields live in `fields`."""

    status: ExtractionStatus = "ok"
    replicate: int = 0
    method: ExtractionMethod = "rules"
    extraction_model: str | None = None  # the LLM that read this reply (None: the rules settled it alone)
    fields: dict[str, Any] = {}
    inputs: dict[str, Any] = {}  # `grace extract --input`: the input row's other columns, as given

    @property
    def key(self) -> str:
        return f"{self.trial_id}#{self.replicate}"


class ServerWait(BaseModel):
    """One pause of a stage's requests for its server (grace.serving.gate): a line of the study folder's
    server-waits.jsonl (grace.server_waits), kept across reruns and retries."""

    model_config = ConfigDict(extra="forbid")

    experiment: str = ""  # the stage that waited (exp1, exp2, extract); named when the wait is written
    outcome: WaitOutcome
    reason: str  # what the backend said while the server was away (or why the stage stopped)
    waited_s: float
    paused: int  # requests that waited
    started_at: str

    def as_dict(self) -> dict[str, Any]:
        """The wait as a stage's summary lists it (the summary names the stage)."""
        return self.model_dump(exclude={"experiment"})
