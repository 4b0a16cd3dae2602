"""GPU-hour estimates: planned hours for the full study per model and profile, and actual hours of a run.

Planned: every trial costs "decode-equivalent" tokens - its output tokens plus its prompt tokens weighted by
`prefill_weight` (batched prefill is many times cheaper per token than decode) - for Exp 1 (times the
replications) and for Exp 2 (one output token per prompt scored, one prefill of the prompt per question,
the prefix cache serving the rest). Divided by the profile's `throughput_tokens_per_s` (output tokens/s of
the whole server at Grace's concurrency, config/models.yaml), plus a fixed server start per model, times the
profile's GPU count. Tokens per trial come from a measured run folder when one is given, else from the
prompts (characters / 4) and `max_tokens` (an upper bound).

Actual: from a run folder, per model, the stages' wall time (done.json, else the records' timestamps)
times the GPU count of the profile the run used, and the output tokens/s it reached.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from grace.checkpoint import read_objects

PREFILL_WEIGHT = 0.1  # cost of one prompt token relative to one output token in batched serving
STARTUP_S = 300.0  # per model: pull/load weights, start the server, warm up (GPU profiles)
LOCAL_STARTUP_S = 60.0  # the local CPU server: imports and a small model
CHARS_PER_TOKEN = 4.0  # for prompts that were never measured


@dataclass(frozen=True)
class StudyLoad:
    """What one trial of a study costs, and how many trials there are."""

    study: str
    trials: int
    replications: int
    prompt_tokens: float  # Exp 1 prompt tokens per request (the Exp 2 prompts are about as long)
    completion_tokens: float  # Exp 1 output tokens per request
    exp2_questions: float  # Exp 2 questions per trial (one prompt prefill each)
    exp2_reads: float  # Exp 2 prompts scored per trial (one output token each; a request batches several)
    source: str = "estimate"


@dataclass(frozen=True)
class HoursEstimate:
    """One model and profile's planned hours of the full study (a row of `grace plan`)."""

    model: str
    profile: str
    gpu_count: int
    throughput_tokens_per_s: float | None
    tokens: float  # decode-equivalent tokens of the whole study
    hours: float | None  # wall-clock hours
    gpu_hours: float | None
    source: str


@dataclass(frozen=True)
class ActualRow:
    model: str
    profile: str
    gpu_count: int
    trials: int
    stage_s: float
    output_tokens: int
    gpu_hours: float  # stage hours x GPU count (wall hours when the profile has no GPU)

    @property
    def tokens_per_s(self) -> float | None:
        return self.output_tokens / self.stage_s if self.stage_s > 0 else None


def exp1_tokens(load: StudyLoad, prefill_weight: float = PREFILL_WEIGHT) -> float:
    """Decode-equivalent tokens of one trial's Exp 1 requests."""
    return load.replications * (load.completion_tokens + prefill_weight * load.prompt_tokens)


def exp2_tokens(load: StudyLoad, prefill_weight: float = PREFILL_WEIGHT) -> float:
    """Decode-equivalent tokens of one trial's Exp 2 scoring: a prefill per question, a token per request."""
    return load.exp2_reads + prefill_weight * load.exp2_questions * load.prompt_tokens


def study_tokens(load: StudyLoad, experiments: Iterable[str] = ("exp1", "exp2"),
                 prefill_weight: float = PREFILL_WEIGHT) -> float:
    exps = set(experiments)
    per_trial = (exp1_tokens(load, prefill_weight) if "exp1" in exps else 0.0) + (
        exp2_tokens(load, prefill_weight) if "exp2" in exps else 0.0)
    return load.trials * per_trial


def planned_hours(tokens: float, throughput_tokens_per_s: float, startup_s: float = STARTUP_S) -> float:
    if throughput_tokens_per_s <= 0:
        raise ValueError("throughput_tokens_per_s must be positive")
    return (tokens / throughput_tokens_per_s + startup_s) / 3600.0


def gpu_hours(hours: float, gpu_count: int) -> float:
    """GPU-hours; a CPU-only profile (0 GPUs) counts its wall hours as one device."""
    return hours * max(1, gpu_count)


def estimate_row(model: str, profile: str, gpu_count: int, throughput: float | None, loads: list[StudyLoad], *,
             experiments: Iterable[str] = ("exp1", "exp2"), prefill_weight: float = PREFILL_WEIGHT,
             startup_s: float = STARTUP_S) -> HoursEstimate:
    exps = list(experiments)
    tokens = sum(study_tokens(ld, exps, prefill_weight) for ld in loads)
    hours = planned_hours(tokens, throughput, startup_s) if throughput else None
    source = "; ".join(sorted({ld.source for ld in loads}))
    return HoursEstimate(model, profile, gpu_count, throughput, tokens, hours,
                   gpu_hours(hours, gpu_count) if hours is not None else None, source)


# --- measured tokens per trial, from a run folder ---------------------------------------------------------

def _jsonl(path: Path) -> Iterable[dict[str, Any]]:
    """The records of a checkpoint as JSON objects (older records too: read field by field), under the
    checkpoint module's reading policy: a torn last line left out, any other bad line an error."""
    if not path.exists():
        return
    for _, obj in read_objects(path):
        yield obj


@dataclass(frozen=True)
class Measured:
    """Per-request means over a run folder's ok records of one model and study."""

    prompt_tokens: float | None
    completion_tokens: float | None
    exp2_questions: float | None
    exp2_reads: float | None
    exp1_n: int
    exp2_n: int


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def measure_study_dir(study_dir: Path) -> Measured:
    """Token and request means from <run>/<model>/<study>/exp1.jsonl and exp2.jsonl (ok-ish records only)."""
    e1 = [r for r in _jsonl(study_dir / "exp1.jsonl") if r.get("completion_tokens") is not None]
    e2 = [r for r in _jsonl(study_dir / "exp2.jsonl") if r.get("status") == "ok"]
    return Measured(
        prompt_tokens=_mean([float(r.get("prompt_tokens") or 0) for r in e1]),
        completion_tokens=_mean([float(r["completion_tokens"]) for r in e1]),
        exp2_questions=_mean([float(len(r.get("questions") or {})) for r in e2]),
        exp2_reads=_mean([float(r.get("reads") or r.get("requests") or 0) for r in e2]),  # older: 1 read/request
        exp1_n=len(e1), exp2_n=len(e2),
    )


def measure_run(run_dir: Path) -> dict[str, dict[str, Measured]]:
    """{model folder: {study: Measured}} for every study folder of a run."""
    out: dict[str, dict[str, Measured]] = {}
    for stage in sorted(p for p in Path(run_dir).glob("*/*") if p.is_dir()):
        if (stage / "exp1.jsonl").exists() or (stage / "exp2.jsonl").exists():
            out.setdefault(stage.parent.name, {})[stage.name] = measure_study_dir(stage)
    return out


def pooled(measured: dict[str, dict[str, Measured]], study: str) -> Measured | None:
    """One study's means over every measured model (request-weighted): the proxy for unmeasured models."""
    ms = [m[study] for m in measured.values() if study in m]
    if not ms:
        return None

    def wmean(attr: str, n: str) -> float | None:
        pairs = [(getattr(m, attr), getattr(m, n)) for m in ms if getattr(m, attr) is not None and getattr(m, n)]
        total = sum(w for _, w in pairs)
        return sum(v * w for v, w in pairs) / total if total else None

    return Measured(wmean("prompt_tokens", "exp1_n"), wmean("completion_tokens", "exp1_n"),
                    wmean("exp2_questions", "exp2_n"), wmean("exp2_reads", "exp2_n"),
                    sum(m.exp1_n for m in ms), sum(m.exp2_n for m in ms))


def load_with(base: StudyLoad, m: Measured | None, source: str) -> StudyLoad:
    """`base` (the estimate) with every figure that `m` measured replaced."""
    if m is None:
        return base
    return StudyLoad(
        base.study, base.trials, base.replications,
        m.prompt_tokens if m.prompt_tokens is not None else base.prompt_tokens,
        m.completion_tokens if m.completion_tokens is not None else base.completion_tokens,
        m.exp2_questions if m.exp2_questions is not None else base.exp2_questions,
        m.exp2_reads if m.exp2_reads is not None else base.exp2_reads,
        source if m.exp1_n or m.exp2_n else base.source,
    )


# --- actual hours of a run --------------------------------------------------------------------------------

def _ts(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def _stage_seconds_from_records(study_dir: Path) -> float:
    total = 0.0
    for name in ("exp1.jsonl", "exp2.jsonl"):
        times = [(_ts(r.get("started_at")), _ts(r.get("finished_at"))) for r in _jsonl(study_dir / name)]
        starts = [s for s, _ in times if s]
        ends = [e for _, e in times if e]
        if starts and ends:
            total += (max(ends) - min(starts)).total_seconds()
    return total


def actual_rows(run_dir: Path) -> list[ActualRow]:
    """Per model of a run folder: stage seconds, output tokens, GPU-hours under the run's profile."""
    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    profile = (meta.get("params") or {}).get("profile") or "local"
    models_cfg = ((meta.get("config") or {}).get("models") or {}).get("models") or {}
    rows = []
    for mdir in sorted(p for p in run_dir.iterdir() if p.is_dir() and p.name not in ("logs", "report")):
        stages = [s for s in mdir.iterdir() if s.is_dir() and any(s.glob("exp*.jsonl"))]
        if not stages:
            continue
        done = mdir / "done.json"
        if done.exists():
            seconds = sum(float(s.get("wall_s") or 0) for s in json.loads(done.read_text()).get("stages", []))
        else:
            seconds = sum(_stage_seconds_from_records(s) for s in stages)
        e1 = [r for s in stages for r in _jsonl(s / "exp1.jsonl")]
        tokens = sum(int(r.get("completion_tokens") or 0) for r in e1)
        trials = len({r.get("trial_id") for s in stages for n in ("exp1.jsonl", "exp2.jsonl")
                      for r in _jsonl(s / n)})
        gpus = int(((models_cfg.get(mdir.name) or {}).get("profiles") or {}).get(profile, {}).get("gpu_count") or 0)
        rows.append(ActualRow(mdir.name, profile, gpus, trials, seconds, tokens, gpu_hours(seconds / 3600, gpus)))
    return rows
