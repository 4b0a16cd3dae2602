"""Exp 2 under every rotation of an option list (CircularEval) vs one order, on the same server and trials.

Contenders, all through grace.scoring on the server path, the main wording: `one order` (option_order fixed: the
prompts of before counterbalancing), `every rotation` (the default: study 2's 8 orders per trial, study 1's yes/no
twice), and `every rotation x every wording` (the default run: 3 wordings). Alternately `rounds` times, medians
compared; trials/s counts trials (not records), so the ratio is the cost of a trial. The server's prefix cache
counters (vLLM's /metrics, `vllm:prefix_cache_hits` / `_queries`, in tokens) give the share of prompt tokens it
served from cache during each contender: the rotations share the scenario before the option list.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.common import Row, log, median_row, ratio
from grace.config import Config, ExperimentConfig
from grace.scoring import run_exp2
from grace.serving import Endpoint
from grace.studies import Trial
from grace.studies.registry import get_study

BENCH = "rotations"
CONTENDERS: dict[str, dict[str, object]] = {
    "one order": {"variants": "main", "option_order": "fixed"},
    "every rotation": {"variants": "main"},
    "every rotation x every wording": {"variants": "all"},
}
_METRIC = re.compile(r"^vllm:prefix_cache_(hits|queries)(?:_total)?(?:\{[^}]*\})?\s+([0-9.eE+]+)$", re.M)


def prefix_cache(ep: Endpoint) -> dict[str, float]:
    """vLLM's prefix-cache counters (tokens), summed over labels; empty when the server has no /metrics."""
    try:
        text = httpx.get(f"{ep.base_url}/metrics", timeout=10).text
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    for kind, value in _METRIC.findall(text):
        out[kind] = out.get(kind, 0.0) + float(value)
    return out


def _one(ep: Endpoint, exp: ExperimentConfig, study: str, trials: list[Trial], contender: str, model: str) -> Row:
    before = prefix_cache(ep)
    with tempfile.TemporaryDirectory(prefix="grace-bench-") as d:
        t0 = time.perf_counter()
        res = asyncio.run(run_exp2(ep, get_study(study), trials, exp, Path(d)))
        wall = time.perf_counter() - t0
    after = prefix_cache(ep)
    hits, queries = (after.get(k, 0) - before.get(k, 0) for k in ("hits", "queries"))
    cached = f"prefix cache served {100 * hits / queries:.0f}% of prompt tokens" if queries else "no /metrics"
    bad = res.total - res.ok
    return Row(BENCH, model, contender, n=len(trials), wall_s=wall, rps=len(trials) / wall,
               per_trial=res.sent / len(trials),
               note="; ".join([study, f"{res.total} records", "HTTP requests/trial", cached]
                              + ([f"{bad} not ok"] if bad else [])))


def run(ep: Endpoint, cfg: Config, model: str, *, n: int, studies: tuple[str, ...] = ("study2", "study1"),
        rounds: int = 3) -> list[Row]:
    rows: list[Row] = []
    for study in studies:
        trials = get_study(study).load(cfg.study_file(study, sample=False), limit=n + 8)
        trials, warm = trials[:n], trials[n:]
        base = cfg.experiment(study, "exp2")
        exps = {name: base.model_copy(update=upd) for name, upd in CONTENDERS.items()}
        _one(ep, exps["every rotation"], study, warm or trials[:4], "warm-up", model)  # other trials
        log(f"rotations {model} {study}: {', '.join(CONTENDERS)} x{rounds} on {len(trials)} trials")
        runs: dict[str, list[Row]] = {name: [] for name in CONTENDERS}
        for _ in range(rounds):
            for name, exp in exps.items():
                runs[name].append(_one(ep, exp, study, trials, name, model))
        medians = [median_row(r, "rps", "trials/s", digits=1) for r in runs.values()]
        for r in medians[1:]:
            r.ratio, r.vs = ratio(r.rps, medians[0].rps), medians[0].contender
        rows += medians
    return rows
