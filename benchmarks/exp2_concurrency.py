"""Exp 2's default run (every rotation x every wording, server path) at 16, 32, 64 and the server's batch slots
(what `concurrency: null` means for Exp 1) in flight, on the same server and study.

Exp 2's `concurrency` counts records in flight: a trial in one wording, whose reads go as prompt lists.

The question it answers: which `concurrency` Exp 2 should ship with. The utilization check (grace.serving.metrics)
flags a stage whose mean requests running stay below 40% of the server's batch slots; a record sends its reads as
prompt lists (one HTTP request per wave, a sequence per rotation), so records in flight and requests running
(vLLM counts a sequence as a request) differ.
Contenders alternately `rounds` times, medians compared against 16 (the old default). Every run gets trials of its
own (consecutive slices of the study): a real run sends each trial once, so the prefix cache holds a trial's
scenario across its rotations and wordings, not whole prompts from an earlier run. Per contender: trials/s, the
client's CPU per trial, and from vLLM's /metrics over the contender's run the mean requests running and the busy
share of the batch slots (grace.serving.metrics.summarize, the same figures the stages artifact records).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from benchmarks.common import Row, cpu_s, log, median_row, ratio
from grace.config import Config, ExperimentConfig
from grace.scoring import run_exp2
from grace.serving import Endpoint
from grace.serving.metrics import read_snapshot, summarize
from grace.studies import Trial
from grace.studies.registry import get_study

BENCH = "exp2-concurrency"
LEVELS: tuple[int | None, ...] = (16, 32, 64, None)  # None: the server's batch slots


def label(level: int | None, slots: int) -> str:
    return f"c={level}" if level else f"c=null (batch slots, {slots})"


def _one(ep: Endpoint, exp: ExperimentConfig, study: str, trials: list[Trial], level: int, name: str,
         model: str) -> Row:
    before = read_snapshot(ep.base_url)
    with tempfile.TemporaryDirectory(prefix="grace-bench-") as d:
        t0, c0 = time.perf_counter(), cpu_s()
        res = asyncio.run(run_exp2(ep, get_study(study), trials, exp, Path(d), concurrency=level))
        wall, cpu = time.perf_counter() - t0, cpu_s() - c0
    after = read_snapshot(ep.base_url)
    u = summarize([before, after], batch_slots=ep.batch_slots) if before and after else None
    load = (f"busy {100 * (u.busy_share or 0):.1f}% of {u.batch_slots} slots, mean {u.running_mean:.1f} running, "
            f"{u.waiting_mean:.1f} waiting" if u else "no /metrics")
    bad = res.total - res.ok
    return Row(BENCH, model, name, n=len(trials), wall_s=wall, rps=len(trials) / wall,
               per_trial=res.sent / len(trials), value=u.busy_share if u else None,
               note="; ".join([study, f"{res.total} records", f"client CPU {1000 * cpu / len(trials):.0f} ms/trial",
                               load] + ([f"{bad} not ok"] if bad else [])))


def run(ep: Endpoint, cfg: Config, model: str, *, n: int, studies: tuple[str, ...] = ("study2",),
        rounds: int = 3, levels: tuple[int | None, ...] = LEVELS) -> list[Row]:
    """`value` is the busy share (0..1) of the median run; `ratio` its trials/s over c=16's."""
    slots = ep.batch_slots or 0
    if not slots:
        raise ValueError("the server does not say its batch slots; the null contender needs them")
    rows: list[Row] = []
    names = {label(lv, slots): lv or slots for lv in levels}
    for study in studies:
        need = 8 + rounds * len(names) * n
        trials = get_study(study).load(cfg.study_file(study, sample=False), limit=need)
        if len(trials) < need:
            raise ValueError(f"{study} has {len(trials)} trials; {need} needed for fresh trials in every run")
        warm, fresh = trials[:8], iter(range(8, need, n))
        exp = cfg.experiment(study, "exp2").model_copy(update={"variants": "all"})  # the default run, as shipped
        _one(ep, exp, study, warm, 16, "warm-up", model)  # other trials: rendering, first reads
        log(f"exp2 concurrency {model} {study}: {', '.join(names)} x{rounds}, {n} fresh trials per run")
        runs: dict[str, list[Row]] = {name: [] for name in names}
        for _ in range(rounds):
            for name, level in names.items():
                start = next(fresh)
                row = _one(ep, exp, study, trials[start:start + n], level, name, model)
                log(f"  {name}: {row.rps or 0:.2f} trials/s; {row.note}")
                runs[name].append(row)
        medians = [median_row(r, "rps", "trials/s", digits=2) for r in runs.values()]
        for r in medians[1:]:
            r.ratio, r.vs = ratio(r.rps, medians[0].rps), medians[0].contender
        rows += medians
    return rows
