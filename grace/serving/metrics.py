"""How busy the server was during a stage, from vLLM's Prometheus endpoint (`/metrics`).

The cluster charges GPU time and flags GPUs that sit idle, so every stage records the server's load. A
`MetricsSampler` reads `/metrics` when the stage starts, every `sample_every_s` while it runs (config
`utilization`), and when it ends; `summarize` turns the readings into a `Utilization`. The metric names were
read off the real vLLM 0.32 server (CPU build) here; the text is parsed with `prometheus_client`'s parser and
summed over engines (data-parallel servers label each engine).

What is measured, and why "busy" is what it is:
- **mean requests running** = (time all requests spent running) / (stage time): Little's law on the counter
  `vllm:request_inference_time_seconds_sum`, exact over the stage however short the requests (the gauge
  `vllm:num_requests_running`, sampled, misses requests that live for one engine step, like Exp 2's reads);
  likewise **mean requests waiting** from `vllm:request_queue_time_seconds_sum`;
- **busy share** = mean requests running / the server's batch slots (its `max_num_seqs`): the share of the
  batch the server could run at once that it did run. A GPU's "utilization" as nvidia-smi reports it is the
  time any kernel runs, which is near 100% for one request at a time; the batch is what a GPU decodes in
  parallel for almost the same time per step, so a client throttled to one request wastes nearly all of it
  and is flagged here (1/128 busy), while a client that keeps the batch full is not;
- **time with requests running**: the sampling intervals in which the engine stepped at all
  (`vllm:iteration_tokens_total_count` moved, or requests were running);
- **KV-cache usage** (`vllm:kv_cache_usage_perc`, a fraction) at the readings inside the stage, mean and max;
- **tokens per second**: `vllm:generation_tokens_total` and `vllm:prompt_tokens_total` over the stage.

A stage whose busy share is below `min_busy_share` (the cluster's 40%) is flagged with its likely cause.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from grace.records import Utilization

log = logging.getLogger(__name__)

# sample name (as exposed) -> Snapshot field; histogram sums and counters are cumulative, gauges are not
SAMPLES = {
    "vllm:num_requests_running": "running",
    "vllm:num_requests_waiting": "waiting",
    "vllm:kv_cache_usage_perc": "kv_usage",
    "vllm:generation_tokens_total": "generation_tokens",
    "vllm:prompt_tokens_total": "prompt_tokens",
    "vllm:request_inference_time_seconds_sum": "request_s",
    "vllm:request_queue_time_seconds_sum": "queue_s",
    "vllm:iteration_tokens_total_count": "steps",
}
COUNTERS = ("generation_tokens", "prompt_tokens", "request_s", "queue_s", "steps")


@dataclass(frozen=True)
class Snapshot:
    """One reading of /metrics, summed over the server's engines; `t` is time.monotonic()."""

    t: float
    running: float = 0.0
    waiting: float = 0.0
    kv_usage: float = 0.0
    generation_tokens: float = 0.0
    prompt_tokens: float = 0.0
    request_s: float = 0.0  # total time requests spent running (summed over finished requests)
    queue_s: float = 0.0  # total time requests spent waiting for the scheduler
    steps: float = 0.0  # engine steps


def parse_metrics(text: str, t: float = 0.0) -> Snapshot | None:
    """The readings Grace uses from a Prometheus text page; None when it is not a vLLM server's."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            field = SAMPLES.get(s.name)
            if field is not None:
                values[field] = values.get(field, 0.0) + float(s.value)
    if "running" not in values:
        return None
    return Snapshot(t=t, **values)


def _delta(snaps: list[Snapshot], field: str) -> float:
    """Growth of a cumulative reading over the readings; a drop is a restarted server counting from zero."""
    total = 0.0
    for a, b in zip(snaps, snaps[1:], strict=False):
        va, vb = getattr(a, field), getattr(b, field)
        total += vb - va if vb >= va else vb
    return total


def likely_cause(u: Utilization, *, rows: int | None, concurrency: int | None, unit: str = "requests") -> str:
    """The first explanation the readings support, most specific first."""
    slots = u.batch_slots or 0
    limit = concurrency or 0
    throttled = 0 < limit < slots * u.min_busy_share
    if rows is not None and rows < slots * u.min_busy_share and not (throttled and limit < rows):
        return f"only {rows} {unit} for {slots} batch slots: a stage this small cannot fill the server"
    if u.waiting_mean >= 1 and (u.kv_cache_max or 0) >= 0.9:
        return (f"requests waited for KV-cache space (up to {u.kv_cache_max:.0%} full, {u.waiting_mean:.1f} waiting): "
                "lower max_model_len or raise gpu_memory_utilization")
    if u.waiting_mean >= 1:  # queued at the server with slots free: its step budget or compute binds, not the client
        return (f"requests waited for the server's scheduler ({u.waiting_mean:.1f} waiting, "
                f"{u.running_mean:.1f} running of {slots} slots): its compute or token budget per step "
                "(max_num_batched_tokens) bound the batch, not the client; more concurrency will not help")
    if throttled:  # the client's own limit binds before the rows run out
        return (f"the client kept at most {concurrency} {unit} in flight for {slots} batch slots "
                f"(mean {u.running_mean:.1f} requests running): raise the stage's concurrency")
    if u.wall_s > 0 and u.active_s < 0.5 * u.wall_s:
        return (f"no request was running {1 - u.active_s / u.wall_s:.0%} of the stage: the client was slow to send "
                "(work between requests, a stuck step, waits for the server)")
    return (f"requests ended faster than the client sent new ones (mean {u.running_mean:.1f} running"
            + (f" of {concurrency} in flight)" if concurrency else ")"))


def summarize(snaps: list[Snapshot], *, batch_slots: int | None, min_busy_share: float = 0.40,
              rows: int | None = None, concurrency: int | None = None, unit: str = "requests") -> Utilization | None:
    """The stage's Utilization from its readings (at least the first and the last); None with fewer."""
    if len(snaps) < 2 or snaps[-1].t <= snaps[0].t:
        return None
    wall = snaps[-1].t - snaps[0].t
    active = sum(b.t - a.t for a, b in zip(snaps, snaps[1:], strict=False)
                 if b.steps != a.steps or b.running > 0 or a.running > 0)
    inside = [s.kv_usage for s in snaps[1:-1]]
    running = _delta(snaps, "request_s") / wall
    u = Utilization(
        wall_s=round(wall, 3), samples=len(snaps), active_s=round(min(active, wall), 3),
        running_mean=round(running, 3), waiting_mean=round(_delta(snaps, "queue_s") / wall, 3),
        kv_cache_mean=round(sum(inside) / len(inside), 4) if inside else None,
        kv_cache_max=round(max(inside), 4) if inside else None,
        generation_tokens_per_s=round(_delta(snaps, "generation_tokens") / wall, 2),
        prompt_tokens_per_s=round(_delta(snaps, "prompt_tokens") / wall, 2),
        batch_slots=batch_slots, min_busy_share=min_busy_share,
        busy_share=round(min(1.0, running / batch_slots), 4) if batch_slots else None)
    if u.busy_share is not None and u.busy_share < min_busy_share:
        u = u.model_copy(update={"low": True})
        u = u.model_copy(update={"cause": likely_cause(u, rows=rows, concurrency=concurrency, unit=unit)})
    return u


def read_snapshot(base_url: str, timeout: float = 5.0) -> Snapshot | None:
    """One reading of `base_url`/metrics; None when it cannot be read or is not a vLLM server's."""
    t = time.monotonic()
    try:
        r = httpx.get(base_url.rstrip("/") + "/metrics", timeout=timeout)
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    try:
        return parse_metrics(r.text, t)
    except ValueError:  # not Prometheus text
        return None


class MetricsSampler:
    """Readings of a server's /metrics from entering to leaving, every `every_s` in a background thread.

    `base_url` is asked for the current address at each reading (a restarted local server has a new port). A
    reading that fails is skipped; a server without vLLM's metrics gives no readings, and `summary` None.
    """

    def __init__(self, base_url: Callable[[], str | None], every_s: float = 15.0) -> None:
        self.base_url = base_url
        self.every_s = every_s
        self.snapshots: list[Snapshot] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="grace-metrics", daemon=True)

    def read(self) -> None:
        try:
            url = self.base_url()
        except Exception:  # noqa: BLE001 - no server right now (restarting): skip this reading
            url = None
        snap = read_snapshot(url) if url else None
        if snap is None:
            self.failed += 1
        else:
            self.snapshots.append(snap)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.read()

    def __enter__(self) -> MetricsSampler:
        self.read()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.read()

    def summary(self, **kw: Any) -> Utilization | None:
        return summarize(self.snapshots, **kw)
