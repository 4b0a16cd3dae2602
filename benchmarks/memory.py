"""Memory: peak RSS of the Exp 1 client process at 300 vs 2,424 trials (study 2), each in a fresh process.

max_tokens is cut to a few tokens so 2,424 requests take seconds; the client's memory depends on the trial
count, not on the answer length (answers are written to the checkpoint as they arrive).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

from benchmarks.common import Row, log
from grace.paths import project_root
from grace.serving import Endpoint

BENCH = "memory"
MIB = 1024 * 1024


def probe(ep: Endpoint, limit: int, max_tokens: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="grace-bench-rss-") as d:
        out = subprocess.run([sys.executable, "-m", "benchmarks.rss_probe", "--endpoint", ep.base_url, "--model",
                              ep.model, "--limit", str(limit), "--max-tokens", str(max_tokens), "--out", d],
                             cwd=project_root(), check=True, capture_output=True, text=True, timeout=900)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(ep: Endpoint, sizes: tuple[int, int] = (300, 2424), max_tokens: int = 2) -> list[Row]:
    rows = []
    got = {}
    for n in sizes:
        log(f"memory {ep.model}: Exp 1 client on {n} study2 trials (max_tokens {max_tokens})")
        r = probe(ep, n, max_tokens)
        got[n] = r
        rows.append(Row(BENCH, ep.model, f"client peak RSS, {r['trials']} trials", n=int(r["trials"]),
                        wall_s=r["wall_s"], rps=r["trials"] / r["wall_s"], value=r["loop_peak"] / MIB,
                        note=f"MiB in request loop; whole run {r['peak'] / MIB:.0f}, at start "
                             f"{r['rss_before'] / MIB:.0f} MiB"))
    small, big = (got[n] for n in sizes)
    rows.append(Row(BENCH, ep.model, f"{sizes[1]}/{sizes[0]} trials: peak RSS growth",
                    value=(big["loop_peak"] - small["loop_peak"]) / MIB,
                    ratio=big["loop_peak"] / small["loop_peak"], vs=f"{sizes[0]} trials",
                    note=f"MiB, request loop; whole run +{(big['peak'] - small['peak']) / MIB:.0f} MiB"))
    return rows
