"""Shared fixtures: the real local vLLM servers (started once per session) and a leak check."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from grace.config import Config, load_config
from grace.serving import Endpoint, LocalVLLMServer

ROOT = Path(__file__).resolve().parent.parent


# Every process this test session starts inherits this marker, so the leak check only ever looks at (and
# kills) servers of this session, never those of another session running beside it.
SESSION_MARK = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
os.environ["GRACE_TEST_SESSION"] = SESSION_MARK


def vllm_processes() -> list[psutil.Process]:
    """vLLM server processes started by this test session (directly or through Prefect)."""
    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            if "vllm" not in cmd or p.pid == os.getpid():
                continue
            if p.environ().get("GRACE_TEST_SESSION") == SESSION_MARK:
                out.append(p)
        except psutil.Error:
            continue
    return out


@pytest.fixture(scope="session")
def cfg() -> Config:
    return load_config(ROOT / "config")


@pytest.fixture(scope="session")
def toy_server(cfg: Config) -> Iterator[Endpoint]:
    """The random toy Llama behind the real vLLM CPU server: fast, meaningless answers."""
    with LocalVLLMServer(cfg.model("toy"), run_id="pytest-toy") as ep:
        yield ep


@pytest.fixture(scope="session")
def smollm2_server(cfg: Config) -> Iterator[Endpoint]:
    """SmolLM2-135M-Instruct behind the real vLLM CPU server: real language, slow."""
    with LocalVLLMServer(cfg.model("smollm2"), run_id="pytest-smollm2") as ep:
        yield ep


@pytest.fixture(scope="session", autouse=True)
def no_leaked_servers() -> Iterator[None]:
    """Every test session must end with no vLLM server left running."""
    yield
    leaked = [p for p in vllm_processes() if p.is_running()]
    for p in leaked:
        p.kill()
    assert not leaked, f"vLLM servers left running after the tests: {[p.pid for p in leaked]}"
