"""Pydantic records written to disk, one per stage, one JSONL line per key; the server waits of a stage, its
server's load (Utilization) and a server's lives (ServerLife).

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
MAIN_VARIANT = "main"  # a study's main prompt wording (grace.studies.MAIN)


def variant_key(key: str, prompt_variant: str) -> str:
    """A record's checkpoint key in its prompt variant: the main wording's keys are those of runs before variants
    (`trial_id`, `trial_id#replicate`), another wording's carry `@variant`."""
    return key if prompt_variant == MAIN_VARIANT else f"{key}@{prompt_variant}"


def now() -> datetime:
    return datetime.now(UTC)


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trial_id: str
    model: str
    model_revision: str
    study: str
    prompt_version: str
    prompt_variant: str = MAIN_VARIANT  # the study's wording of the prompt (Study.variants), part of the key
    status: RecordStatus = "ok"  # "ok" or a named failure, "error" redone on resume (each stage's in grace.statuses)
    error: str | None = None
    attempts: int = 1
    started_at: datetime = Field(default_factory=now)
    finished_at: datetime = Field(default_factory=now)

    @property
    def key(self) -> str:
        return variant_key(self.trial_id, self.prompt_variant)

    @property
    def done(self) -> bool:
        """Complete: a resume skips it. Failed requests (status error) are redone."""
        return self.status != "error"


class Exp1Record(Record):
    status: Exp1Status = "ok"
    replicate: int = 0
    messages: list[dict[str, str]]
    option_order: dict[str, list[str]] = {}  # permutable list -> the order the prompt listed it (grace.studies.orders)
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
        return variant_key(f"{self.trial_id}#{self.replicate}", self.prompt_variant)


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
    # >1: these scores are the mean over the list's rotations (Exp2Record.rotations holds each as sent): probs,
    # probs_norm, logprobs and option_mass averaged, entropy and argmax of the averages, options in the study's own
    # order, prompt and token ids those of the first rotation.
    pooled_over: int = 1


class Exp2Record(Record):
    status: Exp2Status = "ok"
    path: ScoringPath = "server"
    questions: dict[str, OptionScores] = {}  # what the analysis reads: a rotated question's pooled scores
    rotations: dict[str, list[OptionScores]] = {}  # a question scored under each rotation of its list: each as sent
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
        return variant_key(f"{self.trial_id}#{self.replicate}", self.prompt_variant)


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


class Utilization(BaseModel):
    """The server's load during one stage, from its /metrics (grace.serving.metrics): in run.json, done.json and
    the study folder's utilization.jsonl (grace.utilization)."""

    model_config = ConfigDict(extra="forbid")

    wall_s: float  # from the first reading to the last
    samples: int
    active_s: float  # time with requests running
    running_mean: float  # requests running, time-averaged (Little's law)
    waiting_mean: float
    kv_cache_mean: float | None = None  # readings inside the stage (None: the stage ended before the first)
    kv_cache_max: float | None = None
    generation_tokens_per_s: float
    prompt_tokens_per_s: float
    batch_slots: int | None = None
    busy_share: float | None = None  # running_mean / batch_slots (None: slots unknown)
    min_busy_share: float = 0.40
    low: bool = False
    cause: str | None = None


class UtilizationLine(Utilization):
    """A line of the study folder's utilization.jsonl: a stage's Utilization and the stage (exp1, exp2,
    extract)."""

    experiment: str


class ServerLife(BaseModel):
    """One life of a model's server (grace.serving.managed), for the GPU-hour split (`grace plan --run`,
    grace.gpu_time): its start (the GPUs held while it loads), the time it was up, and how much of that its batch
    ran requests (Little's law over the life); a list of them is a model's server.json."""

    model_config = ConfigDict(extra="forbid")

    started_at: str  # ISO time the backend was asked to start
    start_s: float  # asked -> ready (a failed start: until it gave up)
    up_s: float = 0.0  # ready -> teardown
    request_s: float | None = None  # time requests spent running while up (None: /metrics unreadable)
    batch_slots: int | None = None
    ready: bool = True

    @property
    def busy_s(self) -> float | None:
        """Batch-slot seconds in use / slots: the up time the whole batch would have needed for the same work."""
        if self.request_s is None or not self.batch_slots:
            return None
        return min(self.up_s, self.request_s / self.batch_slots)
