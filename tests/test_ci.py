"""The lab's GitLab CI pipeline that builds the runner image: valid against GitLab's CI schema (vendored in
check-jsonschema, offline), pushing exactly the image the cluster config names, and an image that carries
what Exp 2 needs for harmony models."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from grace.manifests.settings import load_cluster_settings
from grace.versions import load_versions
from tests.test_docker import instructions

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = ROOT / ".gitlab-ci.yml"


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("check-jsonschema") or str(ROOT / ".venv" / "bin" / "check-jsonschema")
    return subprocess.run([exe, "--builtin-schema", "vendor.gitlab-ci", str(path)], capture_output=True, text=True,
                          timeout=120)


def test_pipeline_and_its_include_are_valid_gitlab_ci() -> None:
    for f in (PIPELINE, ROOT / "versions.yml"):
        r = check_jsonschema(f)
        assert r.returncode == 0, r.stdout + r.stderr


def test_schema_check_catches_a_bad_pipeline(tmp_path: Path) -> None:
    bad = yaml.safe_load(PIPELINE.read_text())
    bad["runner-image"]["script"] = 5
    bad["runner-image"]["rules"][0] = {"iff": "$CI_COMMIT_TAG"}
    (tmp_path / "bad.yml").write_text(yaml.safe_dump(bad))
    r = check_jsonschema(tmp_path / "bad.yml")
    assert r.returncode != 0 and "script" in r.stdout and "iff" in r.stdout


def test_pipeline_builds_rootless_within_the_hour() -> None:
    ci = yaml.safe_load(PIPELINE.read_text())
    assert {"local": "versions.yml"} in ci["include"]
    job = ci["runner-image"]
    assert re.fullmatch(r"moby/buildkit:v[\d.]+-rootless", job["image"]["name"])  # pinned, no daemon
    minutes = int(re.fullmatch(r"(\d+) minutes", job["timeout"]).group(1))
    assert minutes <= 50
    assert job["script"] == ["sh docker/ci-build.sh"]


def _layout(tmp_path: Path, runner_image: str | None = None) -> Path:
    """The files docker/ci-build.sh reads, in a scratch checkout."""
    (tmp_path / "docker").mkdir()
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "docker" / "ci-build.sh", tmp_path / "docker" / "ci-build.sh")
    shutil.copy(ROOT / "versions.yml", tmp_path / "versions.yml")
    cluster = (ROOT / "config" / "cluster.yaml").read_text()
    if runner_image:
        cluster = re.sub(r"(?m)^(\s*runner:\s*)\S+", rf"\g<1>{runner_image}", cluster)
    (tmp_path / "config" / "cluster.yaml").write_text(cluster)
    return tmp_path


def _run(root: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "RUNNER_VERSION"} | {"DRY_RUN": "1"}
    return subprocess.run(["sh", str(root / "docker" / "ci-build.sh")], capture_output=True, text=True, env=env,
                          timeout=30)


def test_ci_pushes_the_image_the_cluster_config_names(tmp_path: Path) -> None:
    runner = load_cluster_settings(ROOT / "config" / "cluster.yaml").images.runner
    r = _run(_layout(tmp_path))
    assert r.returncode == 0, r.stderr
    cmd = r.stdout.split()
    assert cmd[:2] == ["buildctl-daemonless.sh", "build"]
    assert f"type=image,name={runner},push=true" in cmd
    repo = runner.rsplit(":", 1)[0]
    assert f"type=registry,ref={repo}:buildcache,mode=max" in cmd  # the layer cache beside the image
    assert "dockerfile=docker" in cmd and "filename=Dockerfile" in cmd


@pytest.mark.parametrize("image", ["ghcr.io/grace-lab/grace-runner:9.9.9", "ghcr.io/grace-lab/grace-runner"])
def test_ci_refuses_a_tag_that_is_not_the_runner_version(tmp_path: Path, image: str) -> None:
    r = _run(_layout(tmp_path, image))
    assert r.returncode == 2 and "buildctl" not in r.stdout
    assert f"RUNNER_VERSION {load_versions().runner}" in r.stderr and image in r.stderr


def test_image_carries_what_harmony_scoring_needs() -> None:
    ins = instructions()
    runs = [arg for op, arg in ins if op == "RUN"]
    order = [i for i, a in enumerate(runs) if "download.pytorch.org/whl/cpu torch==2.13.0" in a]
    deps = [i for i, a in enumerate(runs) if "pip install -r /tmp/requirements.txt torch==2.13.0" in a]
    assert order and deps and order[0] < deps[0], "CPU torch before the dependencies, torch kept at its pin"
    copies = [arg for op, arg in ins if op == "COPY"]
    assert copies[0].split() == ["pyproject.toml", "./"], "the dependency layer only changes with pyproject.toml"
    vocab = next(a for a in runs if "grace.scoring.vocab" in a)
    home = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for op, a in ins if op == "ENV")))["GRACE_HOME"]
    assert f"--out {home}/.grace/vocab/tiktoken" in vocab  # where grace.scoring.vocab looks first
    deps_text = (ROOT / "pyproject.toml").read_text()
    assert '"openai-harmony==' in deps_text and '"quicktok-v1==' in deps_text


def test_baked_vocabulary_folder_is_used_without_rebuilding(tmp_path: Path) -> None:
    """The image's layout: a vocabulary under GRACE_HOME/.grace/vocab/tiktoken, no TIKTOKEN_ENCODINGS_BASE."""
    py = str(ROOT / ".venv" / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k != "TIKTOKEN_ENCODINGS_BASE"} | {"GRACE_HOME": str(tmp_path)}
    folder = tmp_path / ".grace" / "vocab" / "tiktoken"
    r = subprocess.run([py, "-m", "grace.scoring.vocab", "--out", str(folder)], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    before = (folder / "o200k_base.tiktoken").stat().st_mtime_ns
    code = ("import os; from grace.scoring.harmony import HarmonyRenderer; "
            "n = len(HarmonyRenderer('low', '2026-01-15').prompt_ids([{'role': 'user', 'content': 'hi'}])); "
            "print(os.environ['TIKTOKEN_ENCODINGS_BASE'], n)")
    r = subprocess.run([py, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    base, n = r.stdout.split()
    assert base == str(folder) and int(n) > 10
    assert (folder / "o200k_base.tiktoken").stat().st_mtime_ns == before
