"""Weights into the model cache before any GPU is requested: resolve the revision once, download, leave a marker.

A model's server should load weights that are already on disk: a download on the GPU pod holds its GPUs idle
for minutes to an hour (Gemma-2-27B is about 54 GB). So a CPU-only step runs first (a Kubernetes Job on the
cluster, grace.serving.prefetch_job; in-process here) and:

1. resolves the configured revision (a branch such as `main` moves) to its commit, once, with the real
   `huggingface_hub` client (`HfApi.model_info`);
2. downloads exactly that commit's serving files (`snapshot_download`: config, tokenizer, safetensors; not the
   `original/` checkpoints some repos carry) into the Hugging Face cache the server reads (`--download-dir`);
3. checks every file against the hub's listed size and leaves a marker beside the cache
   (`grace-prefetch/<repo>@<commit>.json`: the commit and each file's size).

The server is then started on that commit (vLLM `--revision <sha>`, with HF_HUB_OFFLINE so it cannot download),
and the run's provenance records it. A second prefetch of a commit whose marker and files are present does
nothing but the one revision lookup (none at all when the revision is already a commit). A local model (built
by scripts/make_models.py, never downloaded) is checked for presence only: its "commit" is its config revision.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from grace.checkpoint import write_json_atomic
from grace.config import COMMIT, ModelConfig
from grace.errors import GraceError
from grace.paths import cache_dir, resolve

# What vLLM reads from a model repo: config, tokenizer, chat template, safetensors weights (and their index).
SERVING_FILES = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.tiktoken", "*.txt", "*.jinja"]
# Extra checkpoints some repos carry beside the safetensors (Llama's original/, GPT-OSS's metal/): never loaded.
NOT_SERVED = ["original/*", "metal/*", "*.pth", "*.gguf", "*.onnx"]
TERMINATION_LOG_LIMIT = 4096  # bytes Kubernetes keeps of a container's termination message


class PrefetchError(GraceError):
    """The weights could not be made ready: the model stops here, before any GPU is requested."""


class PrefetchMarker(BaseModel):
    """What a prefetch left in the cache: the commit and the files it holds (read back by the flow)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    hf_id: str
    requested: str  # the revision the config asked for (a branch, a tag, a commit)
    commit: str  # what it resolved to; the server loads exactly this
    source: Literal["hub", "local"]
    files: dict[str, int] = {}  # path in the repo -> bytes (empty when too many for a termination message)
    file_count: int = 0
    total_bytes: int = 0
    downloaded_bytes: int = 0  # fetched by this call (0: everything was in the cache already)
    seconds: float = 0.0
    fetched_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @property
    def weights(self) -> list[str]:
        return [f for f in self.files if f.endswith(".safetensors")]


def local_hub_cache() -> Path:
    """The Hugging Face cache a local server reads hub models from: HF_HUB_CACHE, else .grace/hf/hub."""
    env = os.environ.get("HF_HUB_CACHE")
    return Path(env) if env else cache_dir() / "hf" / "hub"


def repo_folder(hf_id: str) -> str:
    """The cache's folder name of a model repo (huggingface_hub's own layout)."""
    return "models--" + hf_id.replace("/", "--")


def marker_path(hub_cache: Path, hf_id: str, commit: str) -> Path:
    return Path(hub_cache).parent / "grace-prefetch" / f"{repo_folder(hf_id)}@{commit}.json"


def snapshot_dir(hub_cache: Path, hf_id: str, commit: str) -> Path:
    return Path(hub_cache) / repo_folder(hf_id) / "snapshots" / commit


def _sizes(folder: Path) -> dict[str, int]:
    """Every file under `folder` and its size (symlinks into the cache's blobs followed)."""
    return {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


def _present(marker: PrefetchMarker, hub_cache: Path) -> bool:
    """The marker's files are all in the snapshot with the sizes it recorded."""
    snap = snapshot_dir(hub_cache, marker.hf_id, marker.commit)
    try:
        return bool(marker.files) and all((snap / f).stat().st_size == n for f, n in marker.files.items())
    except OSError:
        return False


def read_marker(hub_cache: Path, hf_id: str, commit: str) -> PrefetchMarker | None:
    path = marker_path(hub_cache, hf_id, commit)
    try:
        return PrefetchMarker.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None


def _hub_errors() -> tuple[type[BaseException], ...]:
    """What the Hub client raises for an answer it refused or a Hub it could not reach."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    return HfHubHTTPError, LocalEntryNotFoundError, httpx2.HTTPError


def _explain(hf_id: str, revision: str, e: BaseException) -> str:
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(e, GatedRepoError):
        return (f"{hf_id} is gated: accept its licence on the Hub with the account whose token is in the "
                "Hugging Face token Secret (HF_TOKEN)")
    if isinstance(e, RepositoryNotFoundError):
        return f"hub repo {hf_id} not found (or private, and the token cannot read it)"
    if isinstance(e, RevisionNotFoundError):
        return f"revision {revision!r} not found in {hf_id}"
    if isinstance(e, LocalEntryNotFoundError):
        return f"the Hub could not be reached and {hf_id}@{revision} is not in the cache: {e}".splitlines()[0]
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def fetch_hub(model: str, hf_id: str, revision: str, hub_cache: Path, *, token: str | None = None,
              endpoint: str | None = None) -> PrefetchMarker:
    """Resolve `revision` to its commit, download that commit's serving files, check them, write the marker."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.utils import filter_repo_objects

    t0 = time.monotonic()
    hub_cache = Path(hub_cache)
    if COMMIT.match(revision):  # a pinned commit already fetched: nothing to ask the Hub
        done = read_marker(hub_cache, hf_id, revision)
        if done is not None and _present(done, hub_cache):
            return done.model_copy(update={"requested": revision, "downloaded_bytes": 0,
                                           "seconds": round(time.monotonic() - t0, 3)})
    api = HfApi(endpoint=endpoint, token=token)
    try:
        info = api.model_info(hf_id, revision=revision, files_metadata=True)
    except _hub_errors() as e:
        raise PrefetchError(f"{model}: {_explain(hf_id, revision, e)}") from None
    commit = info.sha or ""
    listed = {s.rfilename: s.size for s in info.siblings or []}
    wanted = {f: listed[f] for f in filter_repo_objects(list(listed), allow_patterns=SERVING_FILES,
                                                          ignore_patterns=NOT_SERVED)}
    if not commit or not any(f.endswith(".safetensors") for f in wanted):
        raise PrefetchError(f"{model}: {hf_id}@{revision} has no safetensors weights to serve "
                            f"(files: {', '.join(sorted(listed)) or 'none'})")
    done = read_marker(hub_cache, hf_id, commit)
    if done is not None and _present(done, hub_cache):
        return done.model_copy(update={"requested": revision, "downloaded_bytes": 0,
                                       "seconds": round(time.monotonic() - t0, 3)})
    snap = snapshot_dir(hub_cache, hf_id, commit)
    before = _sizes(snap) if snap.is_dir() else {}
    try:
        snapshot_download(hf_id, revision=commit, cache_dir=hub_cache, token=token, endpoint=endpoint,
                          allow_patterns=SERVING_FILES, ignore_patterns=NOT_SERVED)
        if revision != commit:  # a branch or tag: the static manifests' `--revision main` finds it offline
            ref = hub_cache / repo_folder(hf_id) / "refs" / revision
            ref.parent.mkdir(parents=True, exist_ok=True)
            ref.write_text(commit)
    except _hub_errors() as e:
        raise PrefetchError(f"{model}: {_explain(hf_id, commit, e)}") from None
    except OSError as e:
        raise PrefetchError(f"{model}: cannot write the model cache {hub_cache}: {e}") from None
    got = _sizes(snap)
    wrong = [f"{f} ({got.get(f, 'missing')} of {n} bytes)" for f, n in wanted.items()
             if n is not None and got.get(f) != n]
    if wrong:
        raise PrefetchError(f"{model}: the downloaded files differ from the Hub's listing of {commit}: "
                            + ", ".join(wrong))
    files = {f: got[f] for f in wanted}
    marker = PrefetchMarker(model=model, hf_id=hf_id, requested=revision, commit=commit, source="hub", files=files,
                            file_count=len(files), total_bytes=sum(files.values()),
                            downloaded_bytes=sum(n for f, n in files.items() if before.get(f) != n),
                            seconds=round(time.monotonic() - t0, 3))
    write_json_atomic(marker_path(hub_cache, hf_id, commit), marker.model_dump(mode="json"))
    return marker


def fetch_local(model: ModelConfig) -> PrefetchMarker:
    """A local model's folder (built at set-up, not downloaded): present, with a config and weights."""
    t0 = time.monotonic()
    folder = resolve(model.local_path or "")
    files = _sizes(folder) if folder.is_dir() else {}
    if "config.json" not in files or not any(f.endswith(".safetensors") for f in files):
        raise PrefetchError(f"{model.name}: weights {folder} not found (no config.json and *.safetensors): "
                            "run scripts/setup.sh")
    return PrefetchMarker(model=model.name, hf_id=model.hf_id, requested=model.revision, commit=model.revision,
                          source="local", files=files, file_count=len(files), total_bytes=sum(files.values()),
                          seconds=round(time.monotonic() - t0, 3))


def prefetch(model: ModelConfig, *, revision: str | None = None, hub_cache: Path | None = None,
             token: str | None = None, endpoint: str | None = None) -> PrefetchMarker:
    """The model's weights, ready to serve: a local folder checked, or a hub revision fetched into the cache."""
    if model.local_path:
        return fetch_local(model)
    return fetch_hub(model.name, model.hf_id, revision or model.revision, hub_cache or local_hub_cache(),
                     token=token if token is not None else os.environ.get("HF_TOKEN"),
                     endpoint=endpoint or os.environ.get("HF_ENDPOINT"))


def mismatch(marker: PrefetchMarker, model: ModelConfig, revision: str | None = None) -> str | None:
    """Why `marker` does not cover serving `model` at `revision` (None: it does)."""
    if marker.hf_id != model.hf_id:
        return f"the marker is for {marker.hf_id}, not {model.hf_id}"
    if revision is not None and revision not in (marker.commit, marker.requested):
        return f"the marker holds {marker.commit} ({marker.requested}), not {revision}"
    if marker.source == "hub" and not COMMIT.match(marker.commit):
        return f"the marker's commit {marker.commit!r} is not a commit hash"
    if marker.files and ("config.json" not in marker.files or not marker.weights):
        return f"the marker lists no config.json or safetensors ({', '.join(marker.files)})"
    return None


def served(model: ModelConfig, marker: PrefetchMarker) -> ModelConfig:
    """The model as its server must load it: a hub model pinned to the fetched commit (records carry it too)."""
    if marker.source == "hub" and model.revision != marker.commit:
        return model.model_copy(update={"revision": marker.commit})
    return model


def termination_message(marker: PrefetchMarker) -> str:
    """The marker as JSON that fits a Kubernetes termination message (the file list dropped when too long)."""
    text = marker.model_dump_json()
    if len(text.encode()) > TERMINATION_LOG_LIMIT:
        text = marker.model_copy(update={"files": {}}).model_dump_json()
    return text


def parse_termination_message(text: str) -> PrefetchMarker:
    try:
        return PrefetchMarker.model_validate(json.loads(text))
    except ValueError as e:
        raise PrefetchError(f"the prefetch Job's result is not a marker: {text[:300]!r} ({e})") from None
