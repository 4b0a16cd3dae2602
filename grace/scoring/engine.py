"""Experiment 2 stage: score every trial's questions on one path, resumable, then a tidy table.

A stage of the skeleton (grace.stage), like `grace.query.run_exp1`: records go to `out_dir/exp2.jsonl` (one
Exp2Record per trial, flushed as it arrives; a re-run skips trials already done), then `out_dir/exp2.parquet` /
`.csv` with one row per trial x question x option. A trial that cannot be scored gets a named status
(bad_option, context_overflow, no_logprobs, rejected, error) and no numbers; `error` (transient) rows are redone
on resume.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict

import httpx

from grace.chat import versioned
from grace.config import SERVER_PATHS, ExperimentConfig, ScoringPath, SystemPrompt
from grace.progress import Progress
from grace.records import Exp2Record, OptionScores, now
from grace.scoring.errors import ScoringError
from grace.scoring.inprocess import InProcessScorer
from grace.scoring.logprobs import score_options
from grace.scoring.render import Renderer, adapted, renderer_for
from grace.scoring.server import Counter, score_per_option, score_trie
from grace.scoring.tokenize import EncodedQuestion, Tokenizer, encode_question, load_tokenizer, local_chat_form
from grace.serving.base import Endpoint
from grace.stage import LocalStage, ServedStage, Stage, StageResult, Write, input_columns, run_local, run_served
from grace.studies import Study, Trial

SCORING_CONCURRENCY = 16  # trials in flight when experiments.yaml does not say (each sends its reads batched)
# Statuses from an HTTP 4xx. Before any request of the stage was answered they are held back: if the stage then
# stops because its first requests were all rejected alike (grace.serving.gate), they are recorded as `error`
# (redone on resume), since the fault was the stage's, not the trial's.
REJECTED = ("rejected", "context_overflow")


def encode_trial(tokenizer: Tokenizer, study: Study, trial: Trial, chat_form: SystemPrompt = "native"
                 ) -> list[EncodedQuestion]:
    return [encode_question(tokenizer, adapted(q, chat_form)) for q in study.exp2_questions(trial)]


async def render_trial(renderer: Renderer, study: Study, trial: Trial) -> list[EncodedQuestion]:
    return [await renderer.encode(q) for q in study.exp2_questions(trial)]


class _Common(TypedDict):
    """What every Exp 2 record of a trial carries, whatever its outcome (`Exp2Record(**common, ...)`)."""

    trial_id: str
    model: str
    model_revision: str
    study: str
    prompt_version: str
    path: ScoringPath
    started_at: datetime


def _base(trial: Trial, study: Study, model: str, revision: str, path: ScoringPath,
          chat_form: SystemPrompt = "native") -> _Common:
    return {"trial_id": trial["trial_id"], "model": model, "model_revision": revision, "study": study.name,
            "prompt_version": versioned(study.exp2_prompt_version, chat_form), "path": path, "started_at": now()}


def build_questions(encoded: list[EncodedQuestion], token_lps: list[dict[str, list[float]]]) -> dict[str, OptionScores]:
    return {q.name: score_options(q.prompt, q.options, q.option_ids, lps, q.boundary_fallback)
            for q, lps in zip(encoded, token_lps, strict=True)}


async def _score_server(client: httpx.AsyncClient, endpoint: Endpoint, study: Study, renderer: Renderer,
                        exp: ExperimentConfig, trial: Trial, path: ScoringPath) -> Exp2Record:
    base = _base(trial, study, endpoint.model, endpoint.revision, path, endpoint.chat_form)
    counter = Counter()
    t0 = time.perf_counter()
    try:
        encoded = await render_trial(renderer, study, trial)
        if path == "server":
            lps = await score_trie(client, endpoint, encoded, exp.retry, counter)
        else:
            lps = await asyncio.gather(*(score_per_option(client, endpoint, q, exp.retry, counter) for q in encoded))
        questions = build_questions(encoded, list(lps))
    except ScoringError as e:
        return Exp2Record(**base, status=e.status, error=str(e), attempts=max(1, e.attempts),
                          requests=counter.requests, latency_s=time.perf_counter() - t0)
    return Exp2Record(**base, questions=questions, requests=counter.requests, reads=counter.reads,
                      sequences=sum(len(q.options) for q in encoded), latency_s=time.perf_counter() - t0)


# The Exp 2 table's own columns (rows below); an input column of the same name is kept as input_<name>.
TABLE_COLUMNS = ("trial_id", "model", "model_revision", "study", "prompt_version", "path", "status", "error",
                 "question", "option", "n_tokens", "logprob", "prob", "prob_norm", "entropy", "argmax", "argmax_norm",
                 "is_argmax", "option_mass")


class _Exp2(Stage[Trial, Exp2Record]):
    """What every scoring path shares: one record per trial in exp2.jsonl, the table trial x question x option."""

    experiment = "exp2"
    file = "exp2.jsonl"
    record_type = Exp2Record

    def __init__(self, study: Study, trials: list[Trial]) -> None:
        super().__init__(study.name)
        self.study, self.trials = study, trials
        self.by_id = {t["trial_id"]: t for t in trials}

    def items(self) -> list[Trial]:
        return self.trials

    def key(self, item: Trial) -> str:
        return str(item["trial_id"])

    def rows(self, record: Exp2Record) -> list[dict[str, Any]]:
        """The input columns (the lab's extra ones too), the design cell, then the record's fields; one row per
        question x option (a trial without scores: one row, its status)."""
        trial = self.by_id[record.trial_id]
        head = {**input_columns(trial, TABLE_COLUMNS), **self.study.condition(trial), "trial_id": record.trial_id,
                "model": record.model, "model_revision": record.model_revision, "study": record.study,
                "prompt_version": record.prompt_version, "path": record.path, "status": record.status,
                "error": record.error}
        if not record.questions:
            return [head]
        return [{**head, "question": qname, "option": opt, "n_tokens": len(qs.token_ids[opt]),
                 "logprob": qs.logprobs[opt], "prob": qs.probs[opt], "prob_norm": qs.probs_norm[opt],
                 "entropy": qs.entropy, "argmax": qs.argmax, "argmax_norm": qs.argmax_norm,
                 "is_argmax": opt == qs.argmax, "option_mass": qs.option_mass}
                for qname, qs in record.questions.items() for opt in qs.options]


class ServerScoring(_Exp2, ServedStage[Trial, Exp2Record]):
    """The server paths: "server" (a trie of next-token reads) or "per-option" (prompt_logprobs per option)."""

    held = REJECTED

    def __init__(self, endpoint: Endpoint, study: Study, trials: list[Trial], exp: ExperimentConfig,
                 path: ScoringPath, renderer: Renderer | None = None) -> None:
        if path not in SERVER_PATHS:
            raise ValueError(f"run_exp2 scores through a server; path {path!r} is not a server path")
        super().__init__(study, trials)
        self.endpoint, self.exp, self.path = endpoint, exp, path
        self.renderer = renderer

    def start(self, client: httpx.AsyncClient) -> None:
        self.renderer = self.renderer or renderer_for(self.endpoint, client, self.exp.retry)

    async def record(self, client: httpx.AsyncClient, item: Trial) -> Exp2Record:
        assert self.renderer is not None  # set by start()
        return await _score_server(client, self.endpoint, self.study, self.renderer, self.exp, item, self.path)

    def cost(self, record: Exp2Record) -> int:
        return record.requests


async def run_exp2(
    endpoint: Endpoint,
    study: Study,
    trials: list[Trial],
    exp: ExperimentConfig,
    out_dir: Path,
    *,
    renderer: Renderer | None = None,
    path: ScoringPath = "server",
    concurrency: int | None = None,
    progress: Progress | None = None,
) -> StageResult:
    """Score through a running server: path "server" (trie of next-token reads) or "per-option".

    Prompts are rendered by `renderer`, by default the served model's own template (grace.scoring.render).
    """
    stage = ServerScoring(endpoint, study, trials, exp, path, renderer)
    n = concurrency or exp.concurrency or SCORING_CONCURRENCY
    return await run_served(stage, endpoint, out_dir, concurrency=n, retry=exp.retry, progress=progress)


def run_exp2_sync(*args: Any, **kwargs: Any) -> StageResult:
    return asyncio.run(run_exp2(*args, **kwargs))


class InProcessScoring(_Exp2, LocalStage[Trial, Exp2Record]):
    """The in-process path: transformers forward passes here, a few trials per call; `sent` counts the passes."""

    def __init__(self, model_path: str | Path, study: Study, trials: list[Trial], *, model: str, revision: str,
                 batch_size: int, tokenizer: Tokenizer, chat_form: SystemPrompt,
                 scorer: InProcessScorer | None) -> None:
        super().__init__(study, trials)
        self.model_path, self.model, self.revision = model_path, model, revision
        self.batch_size, self.tokenizer, self.form, self.scorer = batch_size, tokenizer, chat_form, scorer

    def _base(self, trial: Trial) -> _Common:
        return _base(trial, self.study, self.model, self.revision, "inprocess", self.form)

    def work(self, todo: list[Trial], write: Write[Exp2Record], progress: Progress | None) -> int:
        sc = self.scorer or InProcessScorer(self.model_path, batch_size=self.batch_size)
        passes0 = sc.forward_passes
        per_chunk = max(1, self.batch_size // 4)  # trials per scoring call: full batches, frequent checkpoints
        for c in range(0, len(todo), per_chunk):
            chunk = todo[c:c + per_chunk]
            ready: list[tuple[Trial, list[EncodedQuestion]]] = []
            for trial in chunk:
                try:
                    encoded = encode_trial(self.tokenizer, self.study, trial, self.form)
                    for q in encoded:
                        sc.check_fits(q)
                    ready.append((trial, encoded))
                except ScoringError as e:
                    write(Exp2Record(**self._base(trial), status=e.status, error=str(e)))
            t1 = time.perf_counter()
            flat = [q for _, enc in ready for q in enc]
            rows0 = sc.rows
            lps = sc.score(flat) if flat else []
            rows_each = (sc.rows - rows0) // max(1, len(ready))
            each = (time.perf_counter() - t1) / max(1, len(ready))
            i = 0
            for trial, encoded in ready:
                base = self._base(trial)
                part = lps[i:i + len(encoded)]
                i += len(encoded)
                try:
                    rec = Exp2Record(**base, questions=build_questions(encoded, part), latency_s=each,
                                     sequences=rows_each)
                except ScoringError as e:
                    rec = Exp2Record(**base, status=e.status, error=str(e))
                write(rec)
            if progress:
                progress(len(chunk))
        return sc.forward_passes - passes0


def run_exp2_inprocess(
    model_path: str | Path,
    study: Study,
    trials: list[Trial],
    out_dir: Path,
    *,
    model: str,
    revision: str = "unknown",
    batch_size: int = 16,
    tokenizer: Tokenizer | None = None,
    scorer: InProcessScorer | None = None,
    progress: Progress | None = None,
    chat_form: SystemPrompt | None = None,
) -> StageResult:
    """Score with transformers in this process (float32, CPU by default); `sent` counts forward passes.

    `chat_form` as the model's config says; None: found out from the local tokenizer's template."""
    tok = tokenizer or load_tokenizer(str(model_path))
    stage = InProcessScoring(model_path, study, trials, model=model, revision=revision, batch_size=batch_size,
                             tokenizer=tok, chat_form=chat_form or local_chat_form(tok), scorer=scorer)
    return run_local(stage, out_dir, progress)
