"""Where things live: the project root, the git-ignored cache, the vLLM server's Python."""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """GRACE_HOME if set, else the checkout this package was installed from (editable install)."""
    env = os.environ.get("GRACE_HOME")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """The one git-ignored folder for models, venvs, caches and PID files."""
    return project_root() / ".grace"


def config_dir() -> Path:
    return Path(os.environ.get("GRACE_CONFIG_DIR", project_root() / "config"))


def vllm_python() -> Path:
    """The interpreter of the vLLM server venv made by scripts/setup.sh (GRACE_VLLM_PYTHON overrides)."""
    env = os.environ.get("GRACE_VLLM_PYTHON")
    return Path(env) if env else cache_dir() / "vllm-venv" / "bin" / "python"


def resolve(path: str | Path) -> Path:
    """A path from config: absolute as is, relative to the project root otherwise."""
    p = Path(path)
    return p if p.is_absolute() else project_root() / p
