"""`grace cleanup` and `grace archive` against the fake Kubernetes API (through a real kubeconfig)."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from grace.cli import main
from grace.config import Config
from grace.manifests.build import build_all
from grace.manifests.settings import load_cluster_settings
from tests.fake_kube import FakeKube

ROOT = Path(__file__).resolve().parent.parent
PATHS = {"Deployment": "apis/apps/v1", "Job": "apis/batch/v1", "CronJob": "apis/batch/v1", "Service": "api/v1",
         "PersistentVolumeClaim": "api/v1"}


@pytest.fixture()
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKube]:
    with FakeKube() as k:
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        monkeypatch.setenv("KUBECONFIG", str(k.kubeconfig(tmp_path / "kubeconfig")))
        yield k
        assert k.rejected == []


def apply(kube: FakeKube, objs: list[dict]) -> None:
    """What `kubectl apply -k` would do with the generated files: POST each object (the RBAC objects are set up
    once per namespace, not part of a run, and never touched by cleanup: left out here)."""
    for o in objs:
        if o["kind"] in ("ServiceAccount", "Role", "RoleBinding"):
            continue
        plural = o["kind"].lower() + "s"
        url = f"{kube.url}/{PATHS[o['kind']]}/namespaces/{o['metadata']['namespace']}/{plural}"
        r = httpx.post(url, json=o)
        assert r.status_code in (201, 409), r.text


def names(kube: FakeKube) -> set[str]:
    return {f"{o['kind']}/{o['metadata']['name']}" for o in kube.all_objects() if o["kind"] != "Event"}


def test_cleanup_run_then_all(kube: FakeKube, cfg: Config, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = load_cluster_settings(ROOT / "config" / "cluster.yaml")
    other = settings.model_copy(update={"name_prefix": "asmith"})
    apply(kube, build_all(cfg, "a100", settings, "r1", ["gemma2-2b"]))
    apply(kube, build_all(cfg, "a100", settings, "r2", ["gemma2-2b"]))
    apply(kube, build_all(cfg, "a100", other, "r1", ["gemma2-2b"]))  # a lab mate's run with the same id
    before = names(kube)
    assert main(["cleanup", "--run-id", "r1", "--dry-run"]) == 0
    assert names(kube) == before
    assert main(["cleanup", "--run-id", "r1"]) == 0
    out = capsys.readouterr().out
    left = names(kube)
    assert not any("jdoe-r1-" in n for n in left), left
    assert "Deployment/jdoe-r2-gemma2-2b-vllm" in left and "Deployment/asmith-r1-gemma2-2b-vllm" in left
    assert "PersistentVolumeClaim/jdoe-grace-results" in left
    # 4 runner Jobs and the prefetch Job (their pods go with them), the Deployment (its Pod too), the Service
    assert "deleted 7 objects of run r1" in out
    assert main(["cleanup", "--all", "--include-pvcs"]) == 0
    assert {n for n in names(kube) if "jdoe" in n} == set()
    assert any(n.startswith("PersistentVolumeClaim/asmith") for n in names(kube))


def test_cleanup_needs_a_scope(kube: FakeKube) -> None:
    with pytest.raises(SystemExit) as e:
        main(["cleanup"])
    assert e.value.code == 2


def test_archive_local(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "results" / "r9"
    (run / "smollm2" / "study1").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    (run / "smollm2" / "study1" / "exp1.jsonl").write_text('{"trial_id": "a"}\n')
    out = tmp_path / "r9.tar.gz"
    assert main(["archive", "--run-id", "r9", "--results-dir", str(tmp_path / "results"), "--out", str(out)]) == 0
    assert "archived 2 files" in capsys.readouterr().out
    with tarfile.open(out) as tar:
        assert {"r9/run.json", "r9/smollm2/study1/exp1.jsonl"} <= set(tar.getnames())
        assert tar.extractfile("r9/smollm2/study1/exp1.jsonl").read() == b'{"trial_id": "a"}\n'
    assert main(["archive", "--run-id", "nope", "--results-dir", str(tmp_path / "results")]) == 2


def test_archive_from_cluster_without_kubectl(kube: FakeKube, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["archive", "--run-id", "r1", "--from-cluster"]) == 1
    assert "install kubectl" in capsys.readouterr().err
    assert names(kube) == set()
