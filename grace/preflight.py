"""Preflight: a handful of trials through every stage on the model's own server, and the checks that stop a
broken model in minutes instead of after hours of GPU time.

Checks (fatal unless marked):
- server: its vLLM version, and that it answers `logprob_token_ids` (already required when it became ready).
- chat roles: the server's template renders every study's messages in the form used (native or folded).
- same prompt: the prompt Exp 2 scores is token for token the prompt the chat endpoint answers (vLLM returns the
  latter's ids with `return_token_ids`), so Exp 1 and Exp 2 ask the same question.
- exp1: the preflight trials are answered: no failed request, no empty reply, no reply that ran out of tokens
  while reasoning (the reasoning budget); replies cut by max_tokens are reported (not fatal).
- exp2: the trials are scored, and the options got at least MIN_OPTION_MASS of the model's probability (a wrong
  scoring position gives a distribution that sums to 1 and means nothing); a model whose config sets
  `checks.min_option_mass` uses that limit (the random-weight toy models: 0).
- exp1 length and extraction: replies cut by max_tokens, and replies the rules and the LLM stage cannot read,
  stop the model when the preflight's few replies already show the study will breach the report's limit
  (MAX_TRUNCATION_RATE, MIN_OK_RATE): per study, the one-sided 95% Clopper-Pearson bound of the rate is past
  the limit (with 2 replies: both cut, or none read). A model whose config accepts it (`checks.preflight_accepts:
  [truncated, unreadable]`, e.g. a random-weight test model) gets a warning instead. Failed LLM extraction
  requests always stop it.

The trials run in `<run>/<model>/preflight/<study>/`, apart from the study's own checkpoints.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from grace.chat import adapt
from grace.checkpoint import Checkpoint, write_json_atomic
from grace.client import make_client
from grace.config import Config, ExperimentConfig, ExtractionConfig, ModelConfig
from grace.errors import GraceError
from grace.extract.engine import extract_stage
from grace.query import run_exp1
from grace.records import Exp1Record, Exp2Record
from grace.report.checks import (
    MAX_TRUNCATION_RATE,
    MIN_OK_RATE,
    MIN_OPTION_MASS,
    option_mass_by_question,
)
from grace.scoring.engine import run_exp2
from grace.scoring.render import harmony_renderer, renderer_for
from grace.serving.base import Endpoint
from grace.serving.gate import StageStopped
from grace.serving.inspect import TemplateError, error_message, tokenize_chat
from grace.studies import Study, Trial

PREFLIGHT_TRIALS = 2  # per study
ALPHA = 0.05  # one-sided level of the evidence that a study will breach a limit (over_limit)
ExperimentFor = Callable[[str, str], ExperimentConfig]  # (study, experiment) -> its settings for this run


class PreflightFailed(GraceError):
    """The model failed its preflight: the reason is the first failed check."""


@dataclass
class PreflightCheck:
    name: str
    passed: bool
    detail: str
    fatal: bool = True


@dataclass
class PreflightReport:
    model: str
    checks: list[PreflightCheck] = field(default_factory=list)
    wall_s: float = 0.0
    folder: str = ""

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks if c.fatal)

    @property
    def reason(self) -> str:
        failed = [c for c in self.checks if c.fatal and not c.passed]
        return f"{failed[0].name}: {failed[0].detail}" if failed else ""

    def add(self, name: str, passed: bool, detail: str, fatal: bool = True) -> None:
        self.checks.append(PreflightCheck(name, bool(passed), detail, fatal))

    def line(self) -> str:
        if self.passed:
            return f"{self.model}: preflight passed in {self.wall_s:.0f}s ({len(self.checks)} checks)"
        return f"{self.model}: preflight failed in {self.wall_s:.0f}s: {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "passed": self.passed, "reason": self.reason, "wall_s": round(self.wall_s, 1),
                "checks": [asdict(c) for c in self.checks]}


def _check_roles(client: httpx.Client, endpoint: Endpoint, studies: dict[str, tuple[Study, list[Trial]]],
                 report: PreflightReport) -> bool:
    """Every study's messages render in the form used: through the server's template (/tokenize), or for a
    harmony model through the harmony renderer the chat endpoint uses (its Jinja template is not what runs)."""
    for name, (study, trials) in studies.items():
        messages = adapt(study.exp1_messages(trials[0]), endpoint.chat_form)
        h = harmony_renderer(endpoint)
        try:
            if h is not None:
                h.prompt_ids(messages)
            else:
                tokenize_chat(client, endpoint, messages)
        except (TemplateError, ValueError) as e:
            hint = " (set system_prompt: fold in config/models.yaml, or leave it unset to detect)" \
                if endpoint.chat_form == "native" and any(m["role"] == "system" for m in messages) else ""
            report.add("chat roles", False, f"the chat template refuses {name}'s messages "
                                            f"(system message {endpoint.chat_form}): {e}{hint}")
            return False
    how = "harmony: system text as developer instructions" if harmony_renderer(endpoint) else \
        f"system message {endpoint.chat_form}"
    report.add("chat roles", True, f"{how}; every study's messages render")
    return True


async def _same_prompt(endpoint: Endpoint, study: Study, trial: Trial, exp: ExperimentConfig) -> str | None:
    """None when the chat endpoint's prompt ids start Exp 2's prompt (the rest: the answer header); else why."""
    question = study.exp2_questions(trial)[0]
    async with make_client(2, exp.retry) as client:
        encoded = await renderer_for(endpoint, client, exp.retry).encode(question)
        extra = {"reasoning_effort": endpoint.reasoning.effort} if endpoint.reasoning else {}  # as Exp 1 sends
        r = await client.post(f"{endpoint.v1}/chat/completions", json={
            "model": endpoint.model, "messages": adapt(question.messages, endpoint.chat_form), "max_tokens": 1,
            "temperature": 0, "return_token_ids": True, **extra})
    if r.status_code != 200:
        return f"the chat endpoint answered HTTP {r.status_code}: {error_message(r)}"
    chat_ids = r.json().get("prompt_token_ids")
    if not chat_ids:
        return "the chat endpoint returned no prompt_token_ids (return_token_ids): cannot compare the prompts"
    scored = list(encoded.prompt_ids)
    if scored[:len(chat_ids)] != list(chat_ids):
        first = next(i for i, (a, b) in enumerate(zip(scored, chat_ids, strict=False)) if a != b) \
            if any(a != b for a, b in zip(scored, chat_ids, strict=False)) else min(len(scored), len(chat_ids))
        return (f"{study.name}/{question.name}: Exp 2's prompt ({len(scored)} tokens) and the chat endpoint's "
                f"({len(chat_ids)} tokens) differ from token {first}")
    return None


def _study_dir(root: Path, study: str) -> Path:
    d = root / study
    d.mkdir(parents=True, exist_ok=True)
    return d


def run_preflight(
    endpoint: Endpoint, model: ModelConfig, cfg: Config, studies: dict[str, tuple[Study, list[Trial]]],
    experiments: list[str], folder: Path, *, extraction: ExtractionConfig | None = None,
    n_trials: int = PREFLIGHT_TRIALS, experiment_for: ExperimentFor | None = None,
) -> PreflightReport:
    """Run the preflight on a ready server; the report is also written to `folder`/preflight.json.

    `folder` is scratch: emptied first, so every preflight asks its trials of this server afresh."""
    t0 = time.perf_counter()
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    report = PreflightReport(model.name, folder=str(folder))
    exp_of = experiment_for or cfg.experiment
    picked = {name: (study, trials[:n_trials]) for name, (study, trials) in studies.items()}
    report.add("server", True, f"vLLM {endpoint.server_version or 'version unknown'} answers logprob_token_ids")
    with httpx.Client(timeout=120) as client:
        roles_ok = _check_roles(client, endpoint, picked, report)
    if roles_ok:
        try:
            _run_stages(endpoint, model, picked, experiments, folder, report, exp_of, extraction)
        except StageStopped as e:  # the server went away, or rejected every request alike: a failed preflight
            report.add("server", False, str(e))
    report.wall_s = time.perf_counter() - t0
    write_json_atomic(folder / "preflight.json", report.as_dict())
    return report


def _run_stages(endpoint: Endpoint, model: ModelConfig, picked: dict[str, tuple[Study, list[Trial]]],
                experiments: list[str], folder: Path, report: PreflightReport, exp_of: ExperimentFor,
                extraction: ExtractionConfig | None) -> None:
    if "exp2" in experiments:
        problems = [p for name, (study, trials) in picked.items()
                    if (p := asyncio.run(_same_prompt(endpoint, study, trials[0], exp_of(name, "exp2"))))]
        report.add("same prompt", not problems, problems[0] if problems else
                   "Exp 2 scores the prompt the chat endpoint answers, token for token")
    if "exp1" in experiments:
        statuses: Counter[str] = Counter()
        first_error = ""
        for name, (study, trials) in picked.items():
            out = _study_dir(folder, name)
            asyncio.run(run_exp1(endpoint, study, trials, exp_of(name, "exp1"), out))
            for rec in Checkpoint(out / "exp1.jsonl", Exp1Record).load(trim=False).values():
                statuses[rec.status] += 1
                if rec.status == "error" and not first_error:
                    first_error = rec.error or "error"
        total = sum(statuses.values())
        broken = statuses["error"] + statuses["empty"] + statuses["reasoning_truncated"]
        if statuses["error"]:
            detail = f"{statuses['error']} of {total} requests failed: {first_error}"
        elif statuses["reasoning_truncated"]:
            detail = (f"{statuses['reasoning_truncated']} of {total} replies ran out of tokens while reasoning, "
                      "before any answer: raise the model's reasoning.max_tokens")
        elif statuses["empty"]:
            detail = f"{statuses['empty']} of {total} replies are empty"
        else:
            detail = f"{total} replies: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items()))
        report.add("exp1", broken == 0, detail)
        if broken == 0:
            _lengths(model, picked, folder, report)
            _extract(endpoint, model, picked, folder, report, extraction)
    if "exp2" in experiments:
        _exp2(endpoint, model, picked, folder, report, exp_of)


def _exp2(endpoint: Endpoint, model: ModelConfig, picked: dict[str, tuple[Study, list[Trial]]], folder: Path,
          report: PreflightReport, exp_of: ExperimentFor) -> None:
    limit = model.checks.min_option_mass if model.checks.min_option_mass is not None else MIN_OPTION_MASS
    bad: list[str] = []
    masses: dict[str, float | None] = {}
    for name, (study, trials) in picked.items():
        out = _study_dir(folder, name)
        asyncio.run(run_exp2(endpoint, study, trials, exp_of(name, "exp2"), out))
        recs = list(Checkpoint(out / "exp2.jsonl", Exp2Record).load(trim=False).values())
        bad += [f"{r.trial_id} {r.status}: {r.error}" for r in recs if r.status != "ok"]
        masses.update({f"{name}/{q}": m for q, m in option_mass_by_question(recs).items()})
    report.add("exp2", not bad, bad[0] if bad else f"{sum(len(t) for _, t in picked.values())} trials scored")
    low = {q: m for q, m in masses.items() if m is not None and m < limit}
    shown = ", ".join(f"{q} {m:.3g}" for q, m in masses.items() if m is not None)
    report.add("option mass", not low, (f"options got little probability (median below {limit}): "
                                        + ", ".join(f"{q} {m:.3g}" for q, m in low.items())) if low
               else f"median option mass {shown} (limit {limit:g})")


def over_limit(hits: int, n: int, limit: float, above: bool, alpha: float = ALPHA) -> bool:
    """True when `hits` of `n` show a rate past `limit` at one-sided level `alpha` (Clopper-Pearson): the lower
    bound above `limit` (`above`), or the upper bound below it. A few preflight replies stop a model only when
    they are evidence that the whole study will breach the report's limit."""
    # scipy is imported when judging, not when the command line loads (tests/test_imports.py)
    from scipy.stats import beta

    if n == 0:
        return False
    if above:
        return hits > 0 and float(beta.ppf(alpha, hits, n - hits + 1)) > limit
    return hits < n and float(beta.ppf(1 - alpha, hits + 1, n - hits)) < limit


def _judge(report: PreflightReport, model: ModelConfig, name: str, accept: str, breached: bool, detail: str,
           fine: str) -> None:
    """A check that a model's config may accept (`checks.preflight_accepts`): a warning then, else fatal."""
    if breached and accept in model.checks.preflight_accepts:
        report.add(name, False, f"{detail} (accepted: checks.preflight_accepts lists {accept})", fatal=False)
    else:
        report.add(name, not breached, detail if breached else fine)


def _lengths(model: ModelConfig, picked: dict[str, tuple[Study, list[Trial]]], folder: Path,
             report: PreflightReport) -> None:
    """Replies cut by max_tokens, per study: fatal when they show the study will pass MAX_TRUNCATION_RATE."""
    parts, bad = [], []
    for name in picked:
        recs = Checkpoint(folder / name / "exp1.jsonl", Exp1Record).load(trim=False).values()
        cut, n = sum(r.finish_reason == "length" for r in recs), len(recs)
        parts.append(f"{name} {cut} of {n} replies cut by max_tokens")
        if over_limit(cut, n, MAX_TRUNCATION_RATE, above=True):
            bad.append(f"{name}: {cut} of {n} replies cut by max_tokens: the study will exceed the "
                       f"{MAX_TRUNCATION_RATE:.0%} limit (raise max_tokens)")
    _judge(report, model, "exp1 length", "truncated", bool(bad), "; ".join(bad), "; ".join(parts))


def _extract(endpoint: Endpoint, model: ModelConfig, picked: dict[str, tuple[Study, list[Trial]]], folder: Path,
             report: PreflightReport, extraction: ExtractionConfig | None) -> None:
    settings = extraction or ExtractionConfig()
    how = " (rules and LLM)" if settings.llm_fallback else " (rules only)"
    parts, bad, errors = [], [], 0
    for name, (study, _trials) in picked.items():
        summary = extract_stage(folder / name, study, endpoint if settings.llm_fallback else None,
                                concurrency=settings.concurrency, max_tokens=settings.max_tokens)
        read = summary.status.get("ok", 0)
        errors += summary.llm_errors
        parts.append(f"{name} {read} of {summary.total} replies fully read")
        if over_limit(read, summary.total, MIN_OK_RATE, above=False):
            bad.append(f"{name}: {read} of {summary.total} replies fully read{how}: the study will fall below the "
                       f"{MIN_OK_RATE:.0%} limit")
    if errors:
        report.add("extraction", False, f"{errors} failed LLM extraction requests")
        return
    _judge(report, model, "extraction", "unreadable", bool(bad), "; ".join(bad), "; ".join(parts) + how)
