"""One Exp 1 run in a fresh process, reporting its peak RSS: `python -m benchmarks.rss_probe --endpoint URL
--model M --study S --limit N --max-tokens K --out DIR` prints JSON (peak RSS during the request loop, peak
over the whole run including the tidy table, RSS before the first request)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from grace import stage
from grace.config import load_config
from grace.query import run_exp1
from grace.serving import Endpoint
from grace.studies.registry import get_study


class Sampler(threading.Thread):
    """RSS of this process every 50 ms; `peak` is the highest seen."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process()
        self.peak = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.05)


def vm_hwm() -> int:
    """This process's peak RSS in bytes (VmHWM; ru_maxrss would carry the parent's peak across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--study", default="study2")
    p.add_argument("--limit", type=int, required=True)
    p.add_argument("--max-tokens", type=int, default=1)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    cfg = load_config()
    study = get_study(a.study)
    trials = study.load(cfg.study_file(a.study, sample=False), limit=a.limit)
    exp = cfg.experiment(a.study, "exp1")
    exp = exp.model_copy(update={"sampling": exp.sampling.model_copy(update={"max_tokens": a.max_tokens})})
    ep = Endpoint(a.endpoint, a.model)
    before = psutil.Process().memory_info().rss
    sampler = Sampler()
    sampler.start()
    loop_peak = {"v": 0}
    tabulate = stage.tabulate

    def measured_tabulate(*args: Any, **kw: Any) -> None:  # the request loop is over: note its peak
        loop_peak["v"] = sampler.peak
        tabulate(*args, **kw)

    stage.tabulate = measured_tabulate  # the skeleton's table step, which run_served calls after the requests
    t0 = time.perf_counter()
    res = asyncio.run(run_exp1(ep, study, trials, exp, a.out))
    wall = time.perf_counter() - t0
    sampler.running = False
    sampler.join()
    peak = vm_hwm()
    print(json.dumps({"trials": len(trials), "ok": res.ok, "wall_s": wall, "rss_before": before,
                      "loop_peak": loop_peak["v"], "peak": max(peak, sampler.peak)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
