"""Exp 2 on vLLM's CPU build with KV-cache blocks of 128 tokens (vLLM's CPU default) and 32 (Grace's,
grace.serving.args.CPU_BLOCK_SIZE), on the same trials and a fresh server each.

The question it answers: whether the CPU profile's `--block-size 32` pays. vLLM's prefix cache shares whole
blocks only. Exp 2's reads are the prompt plus an option prefix, and each option order is a prompt of its own
that shares the scenario, so with blocks of 128 tokens every read recomputed the tail of its prompt that did not
fill a block. The contenders alternate `rounds` times (a fresh server per run, so the cache starts cold for
both); `ratio` is 32's trials/s over 128's, medians. The log-probabilities of the two must agree: the smaller
block changes what is cached, not what is computed, up to float32 rounding (`value`: the largest difference, in
nats). Measured (2 cores, SmolLM2, the 10 first trials, medians of 2): study 2 2.42x (96.3 -> 39.8 s), study 1
2.10x (18.6 -> 8.9 s); largest differences 0.0 and 2.4e-6 nats.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import Row, alternate
from grace.config import Config
from grace.scoring import run_exp2
from grace.serving.args import CPU_BLOCK_SIZE
from grace.serving.local import LocalVLLMServer
from grace.studies.registry import get_study

BENCH = "block-size"
VLLM_CPU_DEFAULT = 128
SAME_NATS = 1e-4  # float32 rounding: the two agree to this (measured on SmolLM2: 0.0 study 2, 2.4e-6 study 1)


def _server(cfg: Config, model: str, block: int) -> LocalVLLMServer:
    """The model's local server with `--block-size` as given (a profile's extra_args come last and win)."""
    m = cfg.model(model)
    prof = m.profile("local")
    m = m.model_copy(update={"profiles": {**m.profiles, "local": prof.model_copy(
        update={"extra_args": [*prof.extra_args, "--block-size", str(block)]})}})
    return LocalVLLMServer(m, run_id=f"bench-block-{block}")


def _one(cfg: Config, model: str, study: str, block: int, n: int) -> tuple[Row, pd.DataFrame]:
    s = get_study(study)
    trials = s.load(cfg.study_file(study, sample=False), limit=n)
    exp = cfg.experiment(study, "exp2")  # as shipped: every wording, every rotation
    with _server(cfg, model, block) as ep, tempfile.TemporaryDirectory(prefix="grace-bench-") as d:
        t0 = time.perf_counter()
        res = asyncio.run(run_exp2(ep, s, trials, exp, Path(d)))
        wall = time.perf_counter() - t0
        table = pd.read_parquet(next(Path(d).rglob("exp2.parquet"))) if res.ok else pd.DataFrame()
    bad = res.total - res.ok
    row = Row(BENCH, model, f"block {block}{' (vLLM CPU default)' if block == VLLM_CPU_DEFAULT else ''}",
              n=len(trials), wall_s=wall, rps=len(trials) / wall, per_trial=res.sent / len(trials),
              note="; ".join([study, f"{res.total} records"] + ([f"{bad} not ok"] if bad else [])))
    return row, table


def largest_difference(a: pd.DataFrame, b: pd.DataFrame) -> float | None:
    """The largest |log-probability| difference of the same option read by both; inf when a row is missing."""
    keys = [c for c in ("trial_id", "prompt_variant", "question", "option") if c in a.columns]
    if a.empty or b.empty or "logprob" not in a.columns or not keys:
        return None
    m = a.merge(b, on=keys, suffixes=("_a", "_b"))
    if len(m) != len(a):
        return float("inf")
    return float((m["logprob_a"] - m["logprob_b"]).abs().max())


def run(cfg: Config, model: str, *, n: int, studies: tuple[str, ...] = ("study2", "study1"),
        rounds: int = 2) -> list[Row]:
    rows: list[Row] = []
    for study in studies:
        tables: dict[int, pd.DataFrame] = {}

        def one(block: int, study: str = study, tables: dict[int, pd.DataFrame] = tables) -> Row:
            row, table = _one(cfg, model, study, block, n)
            tables.setdefault(block, table)  # the first run's table of each: the log-probabilities compared
            return row

        base, ours = alternate(VLLM_CPU_DEFAULT, CPU_BLOCK_SIZE, one, rounds)
        ours.value = largest_difference(tables[VLLM_CPU_DEFAULT], tables[CPU_BLOCK_SIZE])
        rows += [base, ours]
    return rows
