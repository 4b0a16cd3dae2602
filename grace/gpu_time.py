"""Where a run's GPU-hours went: download (no GPU held), start, busy and idle; and planned download time.

Each life of a model's server is kept in `<run>/<model>/server.json` (grace.records.ServerLife, every
attempt appended): how long it took to start (GPUs held, weights loading), how long it was up, and the time
its requests spent running (vLLM's `request_inference_time_seconds`, read when it became ready and when it was
stopped). Per model:

- **download**: the prefetch's wall time (`<run>/<model>/prefetch.json`); CPU only, so no GPU-hours;
- **start**: every life's start, GPUs held;
- **busy**: the up time the server's batch was in use: (time requests ran) / (batch slots), the same measure as
  a stage's busy share (grace.serving.metrics); without a lifetime reading, the stages' wall time x busy share;
- **idle**: up time minus busy (the batch's empty slots, preflight, gaps between stages, the teardown wait).

GPU-hours are those times x the profile's GPU count (a CPU-only profile counts as one device, as grace.gpu_hours).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from grace.checkpoint import write_json_atomic
from grace.config import ModelConfig
from grace.paths import resolve
from grace.records import ServerLife
from grace.run import RunFolder, safe_name
from grace.utilization import read_utilization

SERVER_FILE = "server.json"
DOWNLOAD_MB_S = 100.0  # assumed Hub -> model-cache PVC throughput for planning (MB/s); measure yours


def record_lives(run: RunFolder, model: str, lives: list[ServerLife]) -> None:
    """Append this attempt's server lives to the model's server.json."""
    path = run.root / safe_name(model) / SERVER_FILE
    kept = _read(path)
    write_json_atomic(path, {"lives": kept + [life.model_dump(mode="json") for life in lives]})


def _read(path: Path) -> list[dict[str, Any]]:
    try:
        return list(json.loads(path.read_text()).get("lives") or [])
    except (OSError, ValueError):
        return []


def read_lives(model_dir: Path) -> list[ServerLife]:
    return [ServerLife.model_validate(x) for x in _read(Path(model_dir) / SERVER_FILE)]


@dataclass(frozen=True)
class GpuSplit:
    """One model's GPU time in a run, in seconds of wall time (x gpu_count for GPU-hours)."""

    model: str
    profile: str
    gpu_count: int
    download_s: float
    start_s: float
    busy_s: float
    idle_s: float
    source: str  # where busy came from

    @property
    def devices(self) -> int:
        return max(1, self.gpu_count)

    def gpu_hours(self, seconds: float) -> float:
        return seconds * self.devices / 3600

    @property
    def total_gpu_hours(self) -> float:
        return self.gpu_hours(self.start_s + self.busy_s + self.idle_s)

    @property
    def busy_share(self) -> float | None:
        up = self.busy_s + self.idle_s
        return self.busy_s / up if up > 0 else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "download_h": round(self.download_s / 3600, 4),
                **{f"{k}_gpu_h": round(self.gpu_hours(getattr(self, f"{k}_s")), 4) for k in ("start", "busy", "idle")},
                "total_gpu_h": round(self.total_gpu_hours, 4), "busy_share": self.busy_share}


def _download_s(model_dir: Path) -> float:
    try:
        return float(json.loads((model_dir / "prefetch.json").read_text()).get("seconds") or 0.0)
    except (OSError, ValueError):
        return 0.0


def _stage_busy(model_dir: Path) -> tuple[float, float]:
    """(wall s, busy s) over the stages' latest utilization readings."""
    wall = busy = 0.0
    for stage in (p for p in model_dir.iterdir() if p.is_dir()):
        for u in read_utilization(stage).values():
            wall += u.wall_s
            busy += u.wall_s * (u.busy_share or 0.0)
    return wall, busy


def split_model(model_dir: Path, profile: str, gpu_count: int, stage_wall_s: float) -> GpuSplit:
    """The GPU-time split of one model folder of a run (`stage_wall_s`: its stages' wall time, the fallback
    for the time up when no server life was recorded)."""
    model_dir = Path(model_dir)
    lives = read_lives(model_dir)
    start = sum(life.start_s for life in lives)
    up = sum(life.up_s for life in lives) if lives else stage_wall_s
    measured = [life.busy_s for life in lives if life.ready]
    if lives and measured and all(b is not None for b in measured):
        busy, source = sum(b or 0.0 for b in measured), "server lifetime (/metrics)"
    else:
        _, busy = _stage_busy(model_dir)
        source = "stages (/metrics)" if busy else "no /metrics readings"
    busy = min(busy, up)
    return GpuSplit(model_dir.name, profile, gpu_count, _download_s(model_dir), start, busy, max(0.0, up - busy),
                    source)


def weights_gib(model: ModelConfig) -> float | None:
    """The size of a model's served weights: on disk for a local model, else the config's `weights_gib`."""
    if model.local_path:
        folder = resolve(model.local_path)
        if folder.is_dir():
            return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**30
    return model.weights_gib


def planned_download_h(model: ModelConfig, mb_per_s: float = DOWNLOAD_MB_S) -> float | None:
    """Hours to fetch the weights into the cache (no GPU held); 0 for a local model (built, not downloaded)."""
    if model.local_path:
        return 0.0
    gib = weights_gib(model)
    return None if gib is None else gib * 2**30 / (mb_per_s * 1e6) / 3600
