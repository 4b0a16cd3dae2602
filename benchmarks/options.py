"""The benchmark runner's options, shared by `python -m benchmarks` and `grace bench` (argparse only: cheap)."""

from __future__ import annotations

import argparse

ALL = ("exp1", "exp2", "rotations", "exp2-concurrency", "prefect", "memory", "block-size", "side-by-side")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models", nargs="+", default=["toy", "smollm2"], help="local models (default: toy smollm2)")
    p.add_argument("--only", nargs="+", choices=ALL, default=list(ALL), help="which benchmarks (default: all)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test of the benchmarks themselves")
    p.add_argument("--no-offline", action="store_true", help="skip vllm.LLM offline generation (the exp1 limit)")
