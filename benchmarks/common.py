"""What every benchmark shares: the result row, latency percentiles, the table, JSON output, servers."""

from __future__ import annotations

import json
import math
import resource
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from grace.config import Config
from grace.paths import project_root
from grace.serving import LocalVLLMServer, ManagedServer

K = TypeVar("K", bound=Hashable)  # what tells two contenders apart (a block size, a thread count)

RESULTS_DIR = project_root() / "benchmarks" / "results"


@dataclass
class Row:
    """One contender's figures in one benchmark; empty fields print as '-'."""

    bench: str
    model: str
    contender: str
    n: int = 0  # requests, trials or rows measured
    wall_s: float | None = None
    rps: float | None = None  # requests (exp1) or trials (exp2) per second
    tok_s: float | None = None  # output tokens per second
    p50_s: float | None = None
    p99_s: float | None = None
    per_trial: float | None = None  # requests / forward passes / Prefect task runs per trial
    value: float | None = None  # a benchmark's own figure (overhead s, peak RSS MiB, ...)
    ratio: float | None = None  # against the row named in `vs`
    vs: str = ""
    note: str = ""


@dataclass
class Target:
    name: str
    model: str
    measured: float | None
    goal: str
    met: bool | None
    note: str = ""


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))
    return s[k]


def median_row(rows: list[Row], attr: str, unit: str, digits: int = 0, label: str | None = None) -> Row:
    """The row with the median `attr` of repeated runs; its note lists every run's figure (and `label`
    renames it)."""
    ranked = sorted(rows, key=lambda r: getattr(r, attr) or 0)
    mid = ranked[len(ranked) // 2]
    if len(rows) > 1:
        spread = ", ".join(f"{getattr(r, attr):.{digits}f}" for r in rows if getattr(r, attr) is not None)
        mid.note = "; ".join(x for x in (mid.note, f"median of {len(rows)} runs ({unit} {spread})") if x)
    if label:
        mid.contender = label
    return mid


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def alternate(base: K, ours: K, one: Callable[[K], Row], rounds: int = 2) -> tuple[Row, Row]:
    """Run the two contenders `rounds` times each, alternating (drift on a shared machine hits both alike); their
    median rows by trials/s, the second's with its ratio over the first."""
    runs: dict[K, list[Row]] = {base: [], ours: []}
    for _ in range(rounds):
        for contender, rows in runs.items():
            row = one(contender)
            log(f"{row.bench} {row.model}: {row.contender}: {row.rps or 0:.2f} trials/s ({row.wall_s:.1f} s)")
            rows.append(row)
    b, o = (median_row(runs[c], "rps", "trials/s", digits=2) for c in (base, ours))
    o.ratio, o.vs = ratio(o.rps, b.rps), b.contender
    return b, o


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{digits}f}" if abs(v) >= 0.01 or v == 0 else f"{v:.2g}"
    return str(v)


COLUMNS = [("bench", "bench"), ("model", "model"), ("contender", "contender"), ("n", "n"),
           ("wall_s", "wall s"), ("rps", "req|trial/s"), ("tok_s", "out tok/s"), ("p50_s", "p50 s"),
           ("p99_s", "p99 s"), ("per_trial", "req/trial"), ("value", "value"), ("ratio", "ratio"),
           ("vs", "vs"), ("note", "note")]


def render(report: Report) -> str:
    """The table of absolute figures and ratios, then the targets, as plain text."""
    table = [[h for _, h in COLUMNS]]
    table += [[_fmt(getattr(r, k)) for k, _ in COLUMNS] for r in report.rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append("targets:")
    for t in report.targets:
        mark = {True: "MET ", False: "MISS", None: "n/a "}[t.met]
        lines.append(f"  [{mark}] {t.model:8} {t.name}: {_fmt(t.measured, 3)} (goal {t.goal}) {t.note}".rstrip())
    m = report.meta
    if "load_before" in m:
        lines.append(f"load average (1/5/15 min): before {m['load_before']}, after {m.get('load_after')}; "
                     f"{m.get('cpus')} CPUs; total {m.get('total_s', 0):.0f} s")
    return "\n".join(lines)


def write_json(report: Report, out_dir: Path = RESULTS_DIR) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"bench-{stamp}.json"
    data = {"meta": report.meta, "rows": [asdict(r) for r in report.rows],
            "targets": [asdict(t) for t in report.targets]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)
    return path


@contextmanager
def local_server(cfg: Config, model: str, run_id: str = "bench") -> Iterator[ManagedServer]:
    """The model behind a real local vLLM server, started and always stopped; `ensure_alive()` before each
    benchmark restarts it if something else stopped it (on a shared machine that happens)."""
    t0 = time.perf_counter()
    with ManagedServer(lambda: LocalVLLMServer(cfg.model(model), run_id=run_id)) as srv:
        print(f"[bench] {model}: vLLM ready at {srv.endpoint.base_url} in {time.perf_counter() - t0:.0f} s",
              flush=True)
        yield srv


def cpu_s() -> float:
    """This process's CPU time (user + system): how much of the 2 shared cores the client itself takes."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def log(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)
