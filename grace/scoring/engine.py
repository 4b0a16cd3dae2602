"""Experiment 2 stage: score every trial's questions on one path, resumable, then a tidy table.

Mirrors `grace.query.run_exp1`: records go to `out_dir/exp2.jsonl` (one Exp2Record per trial, flushed as
it arrives; a re-run skips trials already done), then `out_dir/exp2.parquet` / `.csv` with one row per
trial x question x option. A trial that cannot be scored gets a named status (bad_option, context_overflow,
no_logprobs, rejected, error) and no numbers; `error` (transient) rows are redone on resume.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from grace.chat import versioned
from grace.checkpoint import Checkpoint, write_table
from grace.client import make_client
from grace.config import ExperimentConfig, SystemPrompt
from grace.progress import Progress
from grace.query import StageResult
from grace.records import Exp2Record, OptionScores, now
from grace.scoring.errors import ScoringError
from grace.scoring.inprocess import InProcessScorer
from grace.scoring.logprobs import score_options
from grace.scoring.render import Renderer, adapted, renderer_for
from grace.scoring.server import Counter, score_per_option, score_trie
from grace.scoring.tokenize import EncodedQuestion, Tokenizer, encode_question, load_tokenizer, local_chat_form
from grace.serving.base import Endpoint
from grace.serving.watch import Gate
from grace.studies import Study, Trial
from grace.watched import drain_watched, settle

Path_ = Literal["server", "inprocess", "per-option"]
PATHS: tuple[str, ...] = ("server", "inprocess", "per-option")
SCORING_CONCURRENCY = 16  # trials in flight when experiments.yaml does not say (each sends its reads batched)
# Statuses from an HTTP 4xx. Before any request of the stage was answered they are held back: if the stage then
# stops because its first requests were all rejected alike (grace.serving.watch), they are recorded as `error`
# (redone on resume), since the fault was the stage's, not the trial's.
REJECTED = ("rejected", "context_overflow")


def encode_trial(tokenizer: Tokenizer, study: Study, trial: Trial, chat_form: str = "native"
                 ) -> list[EncodedQuestion]:
    return [encode_question(tokenizer, adapted(q, chat_form)) for q in study.exp2_questions(trial)]


async def render_trial(renderer: Renderer, study: Study, trial: Trial) -> list[EncodedQuestion]:
    return [await renderer.encode(q) for q in study.exp2_questions(trial)]


def _base(trial: Trial, study: Study, model: str, revision: str, path: str, chat_form: str = "native"
          ) -> dict[str, Any]:
    return {"trial_id": trial["trial_id"], "model": model, "model_revision": revision, "study": study.name,
            "prompt_version": versioned(study.exp2_prompt_version, chat_form),  # type: ignore[arg-type]
            "path": path, "started_at": now()}


def build_questions(encoded: list[EncodedQuestion], token_lps: list[dict[str, list[float]]]) -> dict[str, OptionScores]:
    return {q.name: score_options(q.prompt, q.options, q.option_ids, lps, q.boundary_fallback)
            for q, lps in zip(encoded, token_lps, strict=True)}


async def _score_server(client: Any, endpoint: Endpoint, study: Study, renderer: Renderer,
                        exp: ExperimentConfig, trial: Trial, path: str) -> Exp2Record:
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


def _todo(ckpt: Checkpoint[Exp2Record], trials: list[Trial], result: StageResult,
          progress: Progress | None) -> list[Trial]:
    done = ckpt.done_keys()
    todo = [t for t in trials if t["trial_id"] not in done]
    result.skipped = len(trials) - len(todo)
    if progress and result.skipped:
        progress(result.skipped, resumed=True)
    return todo


async def run_exp2(
    endpoint: Endpoint,
    study: Study,
    trials: list[Trial],
    exp: ExperimentConfig,
    out_dir: Path,
    *,
    renderer: Renderer | None = None,
    path: Path_ = "server",
    concurrency: int | None = None,
    progress: Progress | None = None,
) -> StageResult:
    """Score through a running server: path "server" (trie of next-token reads) or "per-option".

    Prompts are rendered by `renderer`, by default the served model's own template (grace.scoring.render).
    """
    if path not in ("server", "per-option"):
        raise ValueError(f"run_exp2 scores through a server; path {path!r} is not a server path")
    out_dir = Path(out_dir)
    ckpt: Checkpoint[Exp2Record] = Checkpoint(out_dir / "exp2.jsonl", Exp2Record)
    result = StageResult(study.name, "exp2", ckpt.path, total=len(trials))
    todo: Iterator[Trial] = iter(_todo(ckpt, trials, result, progress))
    result.load_report = ckpt.report
    n = concurrency or exp.concurrency or SCORING_CONCURRENCY
    result.concurrency = n
    gate = Gate(endpoint)
    held: list[Exp2Record] = []  # rejected before any answer: the trial's own status, or the whole stage's?
    t0 = time.perf_counter()
    async with make_client(n, exp.retry, gate=gate, api_key=endpoint.api_key) as client:
        rend = renderer or renderer_for(endpoint, client, exp.retry)
        with ckpt:

            async def handle(trial: Trial) -> None:
                rec = await _score_server(client, endpoint, study, rend, exp, trial, path)
                result.sent += rec.requests
                if rec.status in REJECTED and gate.unconfirmed:
                    held.append(rec)
                else:
                    while held:
                        ckpt.append(held.pop(0))
                    ckpt.append(rec)
                if progress:
                    progress(1)

            stopped = await drain_watched(gate, todo, n, handle)
            for rec in held:  # a stage-wide rejection is redone on resume; otherwise the trial's status stands
                ckpt.append(rec.model_copy(update={"status": "error"}) if stopped is not None else rec)
    result.wall_s = time.perf_counter() - t0
    finish_exp2(study, trials, out_dir, result)
    settle(gate, result, out_dir, stopped)
    return result


def run_exp2_sync(*args: Any, **kwargs: Any) -> StageResult:
    return asyncio.run(run_exp2(*args, **kwargs))


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
    out_dir = Path(out_dir)
    tok = tokenizer or load_tokenizer(str(model_path))
    form = chat_form or local_chat_form(tok)
    ckpt: Checkpoint[Exp2Record] = Checkpoint(out_dir / "exp2.jsonl", Exp2Record)
    result = StageResult(study.name, "exp2", ckpt.path, total=len(trials))
    todo = _todo(ckpt, trials, result, progress)
    result.load_report = ckpt.report
    t0 = time.perf_counter()
    sc = scorer or InProcessScorer(model_path, batch_size=batch_size)
    passes0 = sc.forward_passes
    per_chunk = max(1, batch_size // 4)  # trials per scoring call: full batches, frequent checkpoints
    with ckpt:
        for c in range(0, len(todo), per_chunk):
            chunk = todo[c:c + per_chunk]
            ready: list[tuple[Trial, list[EncodedQuestion]]] = []
            for trial in chunk:
                try:
                    encoded = encode_trial(tok, study, trial, form)
                    for q in encoded:
                        sc.check_fits(q)
                    ready.append((trial, encoded))
                except ScoringError as e:
                    ckpt.append(Exp2Record(**_base(trial, study, model, revision, "inprocess", form),
                                           status=e.status, error=str(e)))
            t1 = time.perf_counter()
            flat = [q for _, enc in ready for q in enc]
            rows0 = sc.rows
            lps = sc.score(flat) if flat else []
            rows_each = (sc.rows - rows0) // max(1, len(ready))
            each = (time.perf_counter() - t1) / max(1, len(ready))
            i = 0
            for trial, encoded in ready:
                base = _base(trial, study, model, revision, "inprocess", form)
                part = lps[i:i + len(encoded)]
                i += len(encoded)
                try:
                    rec = Exp2Record(**base, questions=build_questions(encoded, part), latency_s=each,
                                     sequences=rows_each)
                except ScoringError as e:
                    rec = Exp2Record(**base, status=e.status, error=str(e))
                ckpt.append(rec)
            if progress:
                progress(len(chunk))
    result.sent = sc.forward_passes - passes0
    result.wall_s = time.perf_counter() - t0
    finish_exp2(study, trials, out_dir, result)
    return result


def finish_exp2(study: Study, trials: list[Trial], out_dir: Path, result: StageResult) -> None:
    """Count statuses over the checkpoint and write the tidy table: trial x question x option."""
    records = Checkpoint(out_dir / "exp2.jsonl", Exp2Record).load()
    by_id = {t["trial_id"]: t for t in trials}
    counts: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    for t in trials:
        rec = records.get(t["trial_id"])
        if rec is None:
            continue
        counts[rec.status] = counts.get(rec.status, 0) + 1
        # the input columns (the lab's extra ones too), the design cell, then the record's fields
        head = {**by_id[rec.trial_id], **study.condition(by_id[rec.trial_id]), "trial_id": rec.trial_id,
                "model": rec.model, "model_revision": rec.model_revision, "study": rec.study,
                "prompt_version": rec.prompt_version, "path": rec.path, "status": rec.status, "error": rec.error}
        if not rec.questions:
            rows.append(head)
            continue
        for qname, qs in rec.questions.items():
            for opt in qs.options:
                rows.append({**head, "question": qname, "option": opt, "n_tokens": len(qs.token_ids[opt]),
                             "logprob": qs.logprobs[opt], "prob": qs.probs[opt], "prob_norm": qs.probs_norm[opt],
                             "entropy": qs.entropy, "argmax": qs.argmax, "argmax_norm": qs.argmax_norm,
                             "is_argmax": opt == qs.argmax, "option_mass": qs.option_mass})
    result.ok = counts.pop("ok", 0)
    result.failed = counts.pop("error", 0)
    result.other = counts
    result.tables = write_table(pd.DataFrame(rows), out_dir / "exp2")
