"""The Hugging Face token never appears in what a run writes: files, Prefect logs, artifacts, state messages,
Kubernetes manifests (only a secretKeyRef), or the error of a server that failed to start (that one in
tests/test_faults_server.py, whose flow run's server dies while starting: one failing vLLM start for both).

A recognisable fake token is put in the environment (and in the Prefect Secret block `hf-token`) of a real
run of the flow `grace` against the real toy vLLM server; then everything the run wrote is searched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client

from grace.cli import main
from grace.serving import Endpoint
from tests.support.fault_proxy import FaultProxy
from tests.support.prefect_runs import artifacts_of, logs_of, run_tree

pytestmark = pytest.mark.faults

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
    with get_client(sync_client=True) as client:  # this run and its subflow runs only
        tree = run_tree(client, state.state_details.flow_run_id)
        logs, artifacts = logs_of(client, tree), artifacts_of(client, tree)
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


KEY = "sk-GraceFakeExtractionKeyDoNotLeak9876543210"


def test_extraction_api_key_is_sent_but_never_written(prefect_server: str, test_config_dir: Path,
                                                      toy_server: Endpoint, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    """An external extraction endpoint that, like a hosted API, answers 401 without its key: the flow reads the
    key from a Prefect Secret block, the endpoint receives it, and it appears nowhere the run writes."""
    with FaultProxy(toy_server.base_url, expect_bearer=KEY) as hosted:
        cdir = tmp_path / "cfg"
        cdir.mkdir()
        (cdir / "models.yaml").write_text((test_config_dir / "models.yaml").read_text())
        exp = yaml.safe_load((test_config_dir / "experiments.yaml").read_text())
        exp["extraction"] = {"llm_fallback": True, "max_tokens": 32, "endpoint": {
            "url": f"{hosted.url}/v1", "model": "toy", "api_key_env": None, "api_key_block": "grace-extraction"}}
        (cdir / "experiments.yaml").write_text(yaml.safe_dump(exp))
        monkeypatch.setenv("GRACE_CONFIG_DIR", str(cdir))
        Secret(value=KEY).save("grace-extraction", overwrite=True)
        from flows.grace_flow import grace

        state = grace(models=["toy"], studies=["study1"], experiments=["exp1"], max_tokens=8, limit=4,
                      endpoint=toy_server.base_url, out=str(tmp_path / "out"), run_id="keyed", preflight=False,
                      return_state=True)
        assert state.is_completed(), state.message
        asked = hosted.authorized["/v1/chat/completions"]
    assert asked >= 1, "the extraction model was never asked, or not with its key"
    records = [json.loads(x) for x in (tmp_path / "out" / "keyed" / "toy" / "study1" / "extracted.jsonl")
               .read_text().splitlines()]
    by = [r["extraction_model"] for r in records]
    assert len(records) == 4 and by.count("toy") == asked  # every reply the hosted model read names it
    run_dir = tmp_path / "out"
    assert [p for p in run_dir.rglob("*") if p.is_file() and KEY.encode() in p.read_bytes()] == []
    with get_client(sync_client=True) as client:  # this run and its subflow runs only
        tree = run_tree(client, state.state_details.flow_run_id)
        logs, artifacts = logs_of(client, tree), artifacts_of(client, tree)
    assert logs and not [x.message for x in logs if KEY in x.message]
    assert artifacts and not [a.key for a in artifacts if KEY in str(a.data) or KEY in str(a.description)]
    out = capfd.readouterr()
    assert KEY not in out.out and KEY not in out.err and KEY not in (state.message or "")


def test_extraction_endpoint_without_its_key_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("GRACE_TEST_MISSING_KEY", raising=False)
    (tmp_path / "x.jsonl").write_text('{"trial_id": "t1", "response": "Initial Answer: 2"}\n')
    code = main(["extract", "--study", "study1", "--input", str(tmp_path / "x.jsonl"), "--output",
                 str(tmp_path / "y.jsonl"), "--llm-endpoint", "https://api.example.invalid/v1", "--llm-model",
                 "some-model", "--llm-api-key-env", "GRACE_TEST_MISSING_KEY"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no API key" in err and "$GRACE_TEST_MISSING_KEY" in err and len(err.splitlines()) == 1
