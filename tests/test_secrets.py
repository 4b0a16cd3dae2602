"""The Hugging Face token never appears in what a run writes: files, Prefect logs, artifacts, state messages,
Kubernetes manifests (only a secretKeyRef), or the error of a server that failed to start.

A recognisable fake token is put in the environment (and in the Prefect Secret block `hf-token`) of a real
run of the flow `grace` against the real toy vLLM server; then everything the run wrote is searched.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

from grace.cli import main
from grace.config import Config
from grace.errors import ServerError
from grace.serving import Endpoint, LocalVLLMServer

pytestmark = [pytest.mark.faults, pytest.mark.prefect]

FAKE = "hf_GraceFakeTokenDoNotLeak0123456789abcdef"


def leaks_in(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and FAKE.encode() in p.read_bytes()]


def test_token_never_written_by_a_flow_run(prefect_server: str, test_config_dir: Path, toy_server: Endpoint,
                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capfd: pytest.CaptureFixture[str]) -> None:
    from flows.grace_flow import grace

    monkeypatch.setenv("HF_TOKEN", FAKE)
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", FAKE)
    monkeypatch.setenv("GRACE_CONFIG_DIR", str(test_config_dir))
    Secret(value=FAKE).save("hf-token", overwrite=True)
    state = grace(models=["toy"], studies=["study1", "study2"], experiments=["exp1"], max_tokens=8,
                  endpoint=toy_server.base_url, out=str(tmp_path), run_id="secrets", return_state=True)
    assert state.is_completed(), state.message
    run_dir = tmp_path / "secrets"
    written = [p for p in run_dir.rglob("*") if p.is_file()]
    assert len(written) >= 5 and any(p.name == "run.json" for p in written)
    assert not leaks_in(run_dir)
    with get_client(sync_client=True) as client:
        runs = [state.state_details.flow_run_id] + [r.id for r in client.read_flow_runs()
                                                     if r.parent_task_run_id is not None]
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=runs)))
        artifacts = client.read_artifacts()
    assert logs and not [x.message for x in logs if FAKE in x.message]
    assert artifacts and not [a.key for a in artifacts if FAKE in str(a.data) or FAKE in str(a.description)]
    assert FAKE not in (state.message or "")
    out = capfd.readouterr()
    assert FAKE not in out.out and FAKE not in out.err


def test_manifests_reference_the_secret_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", FAKE)
    out = tmp_path / "k8s"
    assert main(["manifests", "--profile", "rtx3090", "--out", str(out)]) == 0
    files = list(out.rglob("*.yaml"))
    assert files and not leaks_in(out)
    assert any("secretKeyRef" in f.read_text() and "HF_TOKEN" in f.read_text() for f in files)


def test_token_not_in_a_failed_server_start(cfg: Config, tmp_path: Path) -> None:
    """A start that fails reports the log tail: the token handed to vLLM must not be in it (or the log)."""
    empty = tmp_path / "no-weights"
    empty.mkdir()
    server = LocalVLLMServer(cfg.model("toy"), weights=str(empty), run_id="faults-secret", start_timeout_s=240,
                             log_path=tmp_path / "vllm.log", extra_env={"HF_TOKEN": FAKE})
    with pytest.raises(ServerError) as err:
        server.start()
    assert "died while starting" in str(err.value)
    assert FAKE not in str(err.value) and FAKE not in repr(err.value)
    assert not leaks_in(tmp_path)
