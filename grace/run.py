"""The run folder: results/<run-id>/run.json; per model and study a study folder, <model>/<study>/, with its stages'
files; per model its markers (done.json: every stage finished; extracted_by.json: a separate extraction model
read its replies).

run.json holds the config snapshot, versions, git commit, the command, start and end. A completed run
folder is never written into again unless the caller says so (`overwrite`).
"""

from __future__ import annotations

import importlib.metadata as md
import json
import platform
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from grace.checkpoint import write_json_atomic
from grace.config import Config
from grace.errors import ConfigError, UserInputError
from grace.paths import project_root
from grace.statuses import RunStatus
from grace.versions import load_versions

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    return _SAFE.sub("_", name).strip("_") or "run"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project_root(), capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    try:
        tested = load_versions()
        out |= {"vllm_tested": tested.vllm, "runner_image": tested.runner}
    except ConfigError:
        pass
    for dist in ("grace", "prefect", "httpx", "pydantic", "transformers", "torch"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


class RunFolder:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    def study_dir(self, model: str, study: str) -> Path:
        d = self.root / safe_name(model) / study
        d.mkdir(parents=True, exist_ok=True)
        return d

    def done_marker(self, model: str) -> Path:
        return self.root / safe_name(model) / "done.json"

    def model_done(self, model: str, key: dict[str, Any]) -> bool:
        """True when this model finished every stage of this run with the same plan key (a retry skips it)."""
        path = self.done_marker(model)
        if not path.exists():
            return False
        try:
            return json.loads(path.read_text()).get("plan") == key
        except ValueError:
            return False

    def done_stages(self, model: str) -> list[dict[str, Any]]:
        """The stage summaries a finished model recorded in its done.json."""
        return list(json.loads(self.done_marker(model).read_text()).get("stages") or [])

    def mark_model_done(self, model: str, key: dict[str, Any], stages: list[dict[str, Any]]) -> None:
        write_json_atomic(self.done_marker(model), {"plan": key, "stages": stages})

    def _extracted_marker(self, model: str) -> Path:
        return self.root / safe_name(model) / "extracted_by.json"

    def extraction_done(self, model: str, extractor: str) -> bool:
        """True when `extractor` (a separate extraction model) already read this model's replies in this run."""
        path = self._extracted_marker(model)
        try:
            return path.exists() and json.loads(path.read_text()).get("extraction_model") == extractor
        except ValueError:
            return False

    def mark_extraction_done(self, model: str, extractor: str) -> None:
        write_json_atomic(self._extracted_marker(model), {"extraction_model": extractor})

    def read(self) -> dict[str, Any]:
        return json.loads(self.run_json.read_text()) if self.run_json.exists() else {}

    def begin(self, config: Config, params: dict[str, Any], overwrite: bool = False, resume: bool = False) -> None:
        """Mark the folder running. `resume` (a named study) continues a completed folder instead of refusing it."""
        meta = self.read()
        if meta.get("status") == "completed" and not (overwrite or resume):
            raise UserInputError(
                f"{self.root}: this run folder holds a completed run; choose another --out or pass --overwrite"
            )
        meta.setdefault("started_at", datetime.now(UTC).isoformat())
        meta.update({
            "status": "running",
            "params": params,
            "command": " ".join(sys.argv),
            "git_commit": git_commit(),
            "versions": versions(),
            "config": config.snapshot(),
            # hub revisions that are branch names: the weights behind them can change (grace check-config warns)
            "unpinned_revisions": config.unpinned(),
        })
        meta.setdefault("attempts", 0)
        meta["attempts"] += 1
        write_json_atomic(self.run_json, meta)

    def end(self, status: RunStatus, summary: dict[str, Any] | None = None) -> None:
        meta = self.read()
        meta["status"] = status
        meta["finished_at"] = datetime.now(UTC).isoformat()
        if summary is not None:
            meta["summary"] = summary
        write_json_atomic(self.run_json, meta)
