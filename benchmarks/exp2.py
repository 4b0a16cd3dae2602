"""Exp 2 scoring: Grace's server path (token-trie reads) vs one request per option (lm-eval style) vs the
in-process transformers path (batched forward passes), on the same trials and model.

Trials/s is measured end to end through grace.scoring (checkpoint and tidy table included); requests per
trial are counted by the engine (`StageResult.sent`: HTTP requests, or forward passes in process). The
in-process model load is timed separately and excluded, as the server's start is.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from benchmarks.common import Row, cpu_s, log, median_row, ratio
from grace.config import Config, ScoringPath
from grace.scoring import run_exp2, run_exp2_inprocess
from grace.scoring.inprocess import InProcessScorer
from grace.scoring.tokenize import load_tokenizer
from grace.serving import Endpoint
from grace.stage import StageResult
from grace.studies import Trial
from grace.studies.registry import get_study

BENCH = "exp2"


def _row(model: str, study: str, contender: str, res: StageResult, wall: float, unit: str, note: str = "") -> Row:
    n = res.total - res.skipped
    bad = n - res.ok
    notes = [f"{study}", unit] + ([f"{bad} not ok"] if bad else []) + ([note] if note else [])
    return Row(BENCH, model, contender, n=n, wall_s=wall, rps=n / wall, per_trial=res.sent / max(1, n),
               note="; ".join(notes))


def _server(ep: Endpoint, cfg: Config, study: str, trials: list[Trial], path: ScoringPath
            ) -> tuple[StageResult, float, str]:
    """One server-path run; the note gives the client's own CPU per trial (the rest of the 2 cores is vLLM's)."""
    exp = cfg.experiment(study, "exp2")
    with tempfile.TemporaryDirectory(prefix="grace-bench-") as d:
        t0, c0 = time.perf_counter(), cpu_s()
        res = asyncio.run(run_exp2(ep, get_study(study), trials, exp, Path(d), path=path))
        wall, cpu = time.perf_counter() - t0, cpu_s() - c0
        return res, wall, f"client CPU {1000 * cpu / max(1, len(trials)):.1f} ms/trial"


def _inprocess(cfg: Config, model: str, study: str, trials: list[Trial], scorer: InProcessScorer,
               tok: object) -> tuple[StageResult, float]:
    with tempfile.TemporaryDirectory(prefix="grace-bench-") as d:
        t0 = time.perf_counter()
        res = run_exp2_inprocess(cfg.model(model).weights, get_study(study), trials, Path(d), model=model,
                                 batch_size=scorer.batch_size, tokenizer=tok, scorer=scorer)
        return res, time.perf_counter() - t0


def run(ep: Endpoint, cfg: Config, model: str, *, n: int, studies: tuple[str, ...] = ("study1", "study2"),
        batch_sizes: tuple[int, ...] = (16, 64), rounds: int = 3, per_option_n: int = 16) -> list[Row]:
    """Per study: the server path and the in-process path at each batch size alternately, `rounds` times,
    medians compared (a run of this size takes about a second: run-to-run noise is large on 2 shared cores);
    the per-option contender once, on the first `per_option_n` trials (it is an order of magnitude slower)."""
    mc = cfg.model(model)
    tok = load_tokenizer(mc)
    rows: list[Row] = []
    t0 = time.perf_counter()
    scorer = InProcessScorer(mc.weights, batch_size=batch_sizes[0])
    load_s = time.perf_counter() - t0
    for study in studies:
        all_trials = get_study(study).load(cfg.study_file(study, sample=False), limit=n + 8)
        trials, warm = all_trials[:n], all_trials[n:]
        _server(ep, cfg, study, warm or trials[:4], "server")  # warm-up on other trials (prefix cache)
        log(f"exp2 {model} {study}: server path and in-process x{rounds} on {len(trials)} trials, per-option on "
            f"{min(n, per_option_n)}")
        servers: list[Row] = []
        inproc: dict[int, list[Row]] = {b: [] for b in batch_sizes}
        for _ in range(rounds):
            res, wall, cpu = _server(ep, cfg, study, trials, "server")
            servers.append(_row(model, study, "grace server path", res, wall, "HTTP requests/trial", cpu))
            for b in batch_sizes:
                scorer.batch_size = b
                res, wall = _inprocess(cfg, model, study, trials, scorer, tok)
                inproc[b].append(_row(model, study, f"in-process batch={b}", res, wall, "forward passes/trial",
                                      f"load {load_s:.0f}s excluded"))
        res, wall, cpu = _server(ep, cfg, study, trials[:per_option_n], "per-option")
        per_opt = _row(model, study, "one request per option", res, wall, "HTTP requests/trial", cpu)
        server = median_row(servers, "rps", "trials/s", digits=1)
        best_rows = [median_row(v, "rps", "trials/s", digits=1) for v in inproc.values()]
        best = max(best_rows, key=lambda r: r.rps or 0)
        for r in (server, per_opt, *best_rows):
            if r is not best:
                r.ratio, r.vs = ratio(r.rps, best.rps), best.contender
        rows += [server, per_opt, *best_rows]
    return rows
