"""Run the benchmarks back to back per model, print the table and the targets, write the JSON.

`python -m benchmarks [--models toy smollm2] [--only exp1 exp2 rotations exp2-concurrency prefect memory block-size
side-by-side] [--quick]`. Per model: the offline vLLM limit first (nothing else of ours running), then one vLLM
server for every client benchmark. Targets are judged on `toy`; `smollm2` figures stand beside them.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks import block_size, exp1, exp2, exp2_concurrency, memory, orchestration, rotations, side_by_side
from benchmarks.common import Report, Row, Target, local_server, log, render, write_json
from benchmarks.options import ALL, add_arguments
from grace.config import Config, load_config


@dataclass(frozen=True)
class Sizes:
    exp1_n: int
    exp1_max_tokens: int | None  # None: the study's own Exp 1 max_tokens (study2: 128)
    sweep: tuple[int, ...]
    seq_n: int
    exp2_n: int
    exp2_studies: tuple[str, ...] = ("study1", "study2")
    exp2_batches: tuple[int, ...] = (16, 64)  # in-process batch sizes
    rotations_n: int = 48  # trials per study of the rotations benchmark
    concurrency_n: int = 64  # study 2 trials per run of the exp2-concurrency benchmark (fresh trials every run)
    block_n: int = 10  # trials per study and run of the block-size benchmark (a server of its own per run)
    side_n: int = 800  # study 2 trials per server and run of the side-by-side benchmark (servers of its own)
    mem_sizes: tuple[int, int] = (300, 2424)
    prefect_full: bool = True  # the orchestration pair on the full study too, not only the sample
    benches: tuple[str, ...] = field(default=ALL)


SIZES_TOY_BENCHES = tuple(b for b in ALL if b != "block-size")  # the toy's 2 layers: prefill too cheap to tell
# side-by-side on the toy only: it asks how the test suite's servers should share two cores, and they are toys
SIZES = {
    "toy": Sizes(exp1_n=128, exp1_max_tokens=None, sweep=(32,), seq_n=8, exp2_n=96, benches=SIZES_TOY_BENCHES),
    "smollm2": Sizes(exp1_n=16, exp1_max_tokens=16, sweep=(), seq_n=4, exp2_n=6, exp2_studies=("study1",),
                     exp2_batches=(16,), benches=("exp1", "exp2", "block-size")),
}
QUICK = {
    "toy": Sizes(exp1_n=16, exp1_max_tokens=8, sweep=(4,), seq_n=4, exp2_n=4, mem_sizes=(30, 240),
                 prefect_full=False, rotations_n=4, concurrency_n=4, side_n=32, benches=SIZES_TOY_BENCHES),
    "smollm2": Sizes(exp1_n=4, exp1_max_tokens=8, sweep=(), seq_n=2, exp2_n=2, exp2_studies=("study1",),
                     benches=("exp1", "exp2"), block_n=2),
}


def bench_model(cfg: Config, model: str, sz: Sizes, only: set[str], offline: bool) -> list[Row]:
    todo = [b for b in sz.benches if b in only]
    rows: list[Row] = []
    setup = exp1.setup(cfg, model, sz.exp1_n, sz.exp1_max_tokens) if "exp1" in todo else None
    limit = None
    if setup and offline:
        log(f"exp1 {model}: vllm.LLM offline on {sz.exp1_n} prompts (max_tokens {setup.exp.sampling.max_tokens})")
        try:
            limit = exp1.offline_limit(cfg, setup)
        except Exception as e:  # noqa: BLE001 - reported in the table, the other benchmarks still run
            rows.append(Row("exp1", model, "limit: vllm.LLM offline", note=f"failed: {str(e)[:120]}"))
    # benchmarks with servers of their own (one per run, or two at once), before the shared one starts
    own: list[tuple[str, str, Callable[[], list[Row]]]] = [
        (block_size.BENCH, f"Exp 2 with KV blocks of 128 and 32 tokens, {sz.block_n} trials per study",
         lambda: block_size.run(cfg, model, n=sz.block_n)),
        (side_by_side.BENCH, "servers alone and two at once, cores-many OpenMP threads and one",
         lambda: side_by_side.run(cfg, model, n=sz.side_n)),
    ]
    for bench, what, run in own:
        if bench not in todo:
            continue
        log(f"{bench} {model}: {what}")
        try:
            rows += run()
        except Exception as e:  # noqa: BLE001 - reported in the table, the other benchmarks still run
            rows.append(Row(bench, model, "FAILED", note=f"{type(e).__name__}: {str(e)[:150]}"))
        todo.remove(bench)
    if not todo:
        return rows
    with local_server(cfg, model, run_id=f"bench-{model}") as srv:
        steps: list[tuple[str, Callable[[], list[Row]]]] = []
        if setup:
            steps.append(("exp1", lambda: exp1.run(srv.ensure_alive(), setup, sweep=list(sz.sweep), seq_n=sz.seq_n,
                                                   offline=limit)))
        if "exp2" in todo:
            steps.append(("exp2", lambda: exp2.run(srv.ensure_alive(), cfg, model, n=sz.exp2_n,
                                                   studies=sz.exp2_studies, batch_sizes=sz.exp2_batches)))
        if "rotations" in todo:
            steps.append(("rotations", lambda: rotations.run(srv.ensure_alive(), cfg, model, n=sz.rotations_n)))
        if "exp2-concurrency" in todo:
            steps.append(("exp2-concurrency", lambda: exp2_concurrency.run(srv.ensure_alive(), cfg, model,
                                                                           n=sz.concurrency_n)))
        if "memory" in todo:  # before the orchestration pairs: it passes over study2's prompts (prefix cache)
            steps.append(("memory", lambda: memory.run(srv.ensure_alive(), sizes=sz.mem_sizes)))
        if "prefect" in todo:
            steps.append(("prefect", lambda: orchestration.run(
                srv.ensure_alive(), full=sz.prefect_full,
                warm=("study1",) if "memory" in todo and sz.mem_sizes[1] >= 2424 else ("study1", "study2"))))
        for name, step in steps:
            try:
                rows += step()
            except Exception as e:  # noqa: BLE001 - reported in the table, the other benchmarks still run
                log(f"{name} {model} failed: {type(e).__name__}: {e}")
                rows.append(Row(name, model, "FAILED", note=f"{type(e).__name__}: {str(e)[:150]}"))
    return rows


def _find(rows: list[Row], bench: str, model: str, prefix: str) -> list[Row]:
    return [r for r in rows if r.bench == bench and r.model == model and r.contender.startswith(prefix)]


def targets(rows: list[Row], models: list[str]) -> list[Target]:
    out: list[Target] = []
    for m in models:
        for r in [x for x in _find(rows, "exp1", m, "grace c=") if "default" in x.contender]:
            out.append(Target("exp1 grace / server limit (out tok/s)", m, r.ratio, ">= 0.9",
                              None if r.ratio is None else r.ratio >= 0.9, "limit = saturating client, medians"))
        for r in _find(rows, "exp1", m, "grace default / sequential"):
            out.append(Target("exp1 grace / sequential loop", m, r.ratio, ">= 10",
                              None if r.ratio is None else r.ratio >= 10))
        server = _find(rows, "exp2", m, "grace server path")
        per_opt = _find(rows, "exp2", m, "one request per option")
        for s, p in zip(server, per_opt, strict=False):
            study = s.note.split(";")[0]
            out.append(Target(f"exp2 server / best in-process ({study})", m, s.ratio, ">= 0.9",
                              None if s.ratio is None else s.ratio >= 0.9, f"vs {s.vs}"))
            fewest = s.per_trial is not None and p.per_trial is not None and s.per_trial <= p.per_trial
            out.append(Target(f"exp2 requests/trial ({study})", m, s.per_trial, f"fewest (per-option {p.per_trial})",
                              fewest))
        for r in _find(rows, "prefect", m, "prefect overhead"):
            full = r.contender.endswith(orchestration.FULL.label)
            what = "full study" if full else "sample study (mostly fixed cost; judged on the full study)"
            out.append(Target(f"prefect overhead share of wall time, {what}", m, r.ratio,
                              "<= 0.05" if full else "reported",
                              None if r.ratio is None or not full else r.ratio <= 0.05, f"{r.value:+.1f} s"))
        for r in _find(rows, block_size.BENCH, m, f"block {block_size.CPU_BLOCK_SIZE}"):
            same = r.value is not None and r.value <= block_size.SAME_NATS
            out.append(Target(f"exp2 KV blocks of {block_size.CPU_BLOCK_SIZE} / of {block_size.VLLM_CPU_DEFAULT} "
                              f"({r.note.split(';')[0]})", m, r.ratio, ">= 1.0, the same log-probabilities",
                              None if r.ratio is None else r.ratio >= 1.0 and same,
                              f"largest log-probability difference {r.value}"))
        for r in _find(rows, side_by_side.BENCH, m, "2 at once, 1 thread"):
            out.append(Target("two servers at once: one OpenMP thread / cores-many (trials/s)", m, r.ratio, ">= 1.0",
                              None if r.ratio is None else r.ratio >= 1.0, "why the test suite sets one"))
        for r in [x for x in rows if x.bench == "memory" and x.model == m and "growth" in x.contender]:
            out.append(Target(f"client peak RSS {r.contender.split(' ')[0]}", m, r.ratio, "<= 1.10 (flat)",
                              None if r.ratio is None else r.ratio <= 1.10, f"{r.value:+.1f} MiB"))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="grace bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    return run(p.parse_args(argv))


def run(a: argparse.Namespace) -> int:
    """Every chosen benchmark for every chosen model; prints the table, writes the JSON."""
    cfg = load_config()
    sizes = QUICK if a.quick else SIZES
    report = Report(meta={"models": a.models, "only": a.only, "quick": a.quick, "cpus": os.cpu_count(),
                          "load_before": [round(x, 2) for x in os.getloadavg()],
                          "sizes": {m: sizes[m].__dict__ for m in a.models if m in sizes}})
    t0 = time.perf_counter()
    for m in a.models:
        sz = sizes.get(m) or sizes["smollm2"]
        report.rows += bench_model(cfg, m, sz, set(a.only), offline=not a.no_offline)
    report.meta["total_s"] = time.perf_counter() - t0
    report.meta["load_after"] = [round(x, 2) for x in os.getloadavg()]
    report.targets = targets(report.rows, a.models)
    print()
    print(render(report))
    print(f"\nJSON: {write_json(report)}")
    return 0
