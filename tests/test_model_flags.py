"""Per-model serving flags the families need: the profile `env`, the harmony date, RTX-3090 tensor parallelism
without NVLink, Llama-3's end-of-turn stop, and unpinned revisions; in the config, the local server's
environment, the cluster manifests (schema-valid, policy-clean), the request payloads and run.json."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import yaml

from grace.config import Config, ExperimentConfig, ModelConfig, load_config
from grace.errors import ConfigError
from grace.extract.llm import build_payload
from grace.extract.plugin import extraction_of
from grace.manifests.build import build_all, vllm_deployment
from grace.manifests.policy import check_objects, errors
from grace.manifests.settings import ClusterSettings, load_cluster_settings
from grace.manifests.validate import validate_objects
from grace.query import run_exp1, sampling_payload
from grace.run import RunFolder
from grace.serving import Endpoint, LocalVLLMServer
from grace.serving.args import CPU_BLOCK_SIZE, server_env, vllm_args
from grace.studies.registry import get_study
from grace.versions import load_versions

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def settings() -> ClusterSettings:
    return load_cluster_settings(ROOT / "config" / "cluster.yaml")


def env_of(dep: dict) -> dict[str, str]:
    c = dep["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in c["env"] if "value" in e}


def test_rtx3090_tensor_parallel_gets_both_no_nvlink_settings(cfg: Config, settings: ClusterSettings) -> None:
    for name in ("llama3-70b-awq", "gemma2-27b-awq"):
        dep = vllm_deployment(cfg.model(name), "rtx3090", settings, "r1")
        args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
        assert "--disable-custom-all-reduce" in args and env_of(dep)["NCCL_P2P_DISABLE"] == "1"
    # the same flag is not given where NVLink-class links exist (A100) or without tensor parallelism
    a100 = vllm_deployment(cfg.model("llama3-70b-awq"), "a100", settings, "r1")
    single = vllm_deployment(cfg.model("gemma2-9b"), "rtx3090", settings, "r1")
    for dep in (a100, single):
        assert "--disable-custom-all-reduce" not in dep["spec"]["template"]["spec"]["containers"][0]["args"]
        assert "NCCL_P2P_DISABLE" not in env_of(dep)


def test_harmony_model_gets_its_fixed_date_on_the_server(cfg: Config, settings: ClusterSettings) -> None:
    model = cfg.model("gpt-oss-20b")
    assert model.reasoning is not None and model.reasoning.format == "harmony"
    for profile in model.profiles:
        env = env_of(vllm_deployment(model, profile, settings, "r1"))
        assert env["VLLM_SYSTEM_START_DATE"] == model.reasoning.start_date
        assert "TIKTOKEN_ENCODINGS_BASE" not in env  # vLLM 0.32's oss-harmony carries the vocabulary
    assert "VLLM_SYSTEM_START_DATE" not in server_env(cfg.model("gemma2-9b"), cfg.model("gemma2-9b").profile("a100"))


@pytest.mark.parametrize("profile", ["rtx3090", "a100"])
def test_manifests_with_env_stay_valid_and_policy_clean(cfg: Config, settings: ClusterSettings,
                                                       profile: str) -> None:
    objs = build_all(cfg, profile, settings, "run-env")
    assert validate_objects(objs, settings.kubernetes_version) == []  # kubernetes-validate, strict
    assert errors(check_objects(objs, settings)) == []
    assert any("NCCL_P2P_DISABLE" in env_of(o) for o in objs if o["kind"] == "Deployment") == (profile == "rtx3090")


def test_local_server_environment_carries_the_profile_env(tmp_path: Path) -> None:
    model = ModelConfig.model_validate({
        "name": "harmony-local", "hf_id": "x/y", "family": "gpt-oss", "local_path": str(tmp_path),
        "reasoning": {"format": "harmony", "effort": "high", "start_date": "2026-03-01", "max_tokens": 512},
        "profiles": {"local": {"dtype": "bfloat16", "gpu_count": 0,
                               "env": {"VLLM_GPT_OSS_HARMONY_SYSTEM_INSTRUCTIONS": "0"}}},
    })
    env = LocalVLLMServer(model, port=1)._env()
    assert env["VLLM_SYSTEM_START_DATE"] == "2026-03-01"
    assert env["VLLM_GPT_OSS_HARMONY_SYSTEM_INSTRUCTIONS"] == "0"
    assert env["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0"  # Grace's own CPU settings stay
    # the CPU command line never gets the GPU-only flag
    assert "--disable-custom-all-reduce" not in vllm_args(model, model.profile("local"), weights="w", port=1,
                                                          host="h", seed=0, cpu=True, hardware="local")


def _edited(tmp_path: Path, edit) -> Path:
    cdir = tmp_path / "cfg"
    shutil.copytree(ROOT / "config", cdir)
    models = yaml.safe_load((cdir / "models.yaml").read_text())
    edit(models["models"])
    (cdir / "models.yaml").write_text(yaml.safe_dump(models))
    return cdir


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["llama3-70b-awq"]["profiles"]["rtx3090"].pop("env"),
     "models.llama3-70b-awq: profiles.rtx3090.env: tensor parallelism on rtx3090 (no NVLink) needs NCCL_P2P_DISABLE"),
    (lambda m: m["gpt-oss-20b"]["profiles"]["a100"].update(env={"VLLM_SYSTEM_START_DATE": "2020-01-01"}),
     "profiles.a100.env.VLLM_SYSTEM_START_DATE: set it once, as reasoning.start_date"),
    (lambda m: m["gemma2-2b"]["profiles"]["a100"].update(env={"HF_TOKEN": "hf_x"}),
     "env: HF_TOKEN looks like a secret"),
    (lambda m: m["gemma2-2b"]["profiles"]["a100"].update(env={"9X": "1"}),
     "'9X' is not an environment variable name"),
    (lambda m: m["gpt-oss-20b"]["reasoning"].update(start_date="15.01.2026"),
     "start_date: '15.01.2026' is not a date YYYY-MM-DD"),
    (lambda m: m["gpt-oss-20b"]["reasoning"].update(effort="extreme"), "reasoning.effort"),
    (lambda m: m["llama3.1-8b"].update(stop_token_ids=[-1]), "stop_token_ids.0"),
])
def test_bad_flags_are_one_line_config_errors(tmp_path: Path, edit, message: str) -> None:
    cdir = _edited(tmp_path, edit)
    with pytest.raises(ConfigError) as e:
        load_config(cdir)
    assert message in str(e.value) and "\n" not in str(e.value) and "models.yaml" in str(e.value)


def test_llama3_stop_token_goes_with_every_chat_request(cfg: Config) -> None:
    exp = cfg.experiment("study1", "exp1")
    for name in ("llama3.1-8b", "llama3-70b-awq"):
        assert cfg.model(name).stop_token_ids == [128009]
    assert sampling_payload(exp, 0, Endpoint("http://x", "m", stop_token_ids=(128009,)))["stop_token_ids"] == [128009]
    assert "stop_token_ids" not in sampling_payload(exp, 0, Endpoint("http://x", "m"))
    study1 = extraction_of(get_study("study1"))
    assert build_payload(study1, "r", "m", 50, stop_token_ids=(128009,))["stop_token_ids"] == [128009]
    assert "stop_token_ids" not in build_payload(study1, "r", "m", 50)
    assert isinstance(exp, ExperimentConfig)


def test_run_json_lists_unpinned_revisions(cfg: Config, tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "r")
    run.begin(cfg, {})
    meta = run.read()
    assert meta["unpinned_revisions"]["gpt-oss-20b"] == "main"
    assert "smollm2" not in meta["unpinned_revisions"] and "toy" not in meta["unpinned_revisions"]
    assert set(meta["unpinned_revisions"]) == {m.name for m in cfg.models.values() if not m.pinned}
    assert meta["versions"]["vllm_tested"] == load_versions().vllm
    commit = ModelConfig.model_validate({"hf_id": "a/b", "revision": "0123456789abcdef0123456789abcdef01234567",
                                         "family": "llama", "profiles": {"a100": {}}})
    assert commit.pinned


def test_stop_ids_reach_the_real_server(cfg: Config, toy_server: Endpoint, tmp_path: Path) -> None:
    """Exp 1 through the real vLLM server with a stop id: accepted, and recorded with what was sent."""
    study = get_study("study2")
    trials = study.load(cfg.study_file("study2", sample=True), limit=2)
    eos = 0  # any valid id of the toy's vocabulary
    ep = dataclasses.replace(toy_server, stop_token_ids=(eos,))
    res = asyncio.run(run_exp1(ep, study, trials, cfg.experiment("study2", "exp1"), tmp_path))
    assert res.failed == 0
    rows = [json.loads(ln) for ln in (tmp_path / "exp1.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["sampling"]["stop_token_ids"] == [eos] for r in rows)


def test_cpu_servers_share_prefixes_in_small_kv_blocks(cfg: Config) -> None:
    """vLLM's CPU build caches prefixes in whole blocks of 128 tokens unless told otherwise; Grace's local servers
    ask for 32 (benchmarks/block_size.py: Exp 2 2.1-2.4x faster). GPU servers keep vLLM's own; a profile's
    extra_args come last, so a lab can set its own."""
    toy = cfg.model("toy")
    local = toy.profile("local")
    args = vllm_args(toy, local, weights="w", port=1, host="h", seed=None, cpu=True)
    assert args[args.index("--block-size") + 1] == str(CPU_BLOCK_SIZE) == "32"
    gpu = cfg.model("llama3.1-8b")
    assert "--block-size" not in vllm_args(gpu, gpu.profile("a100"), weights="w", port=1, host="h", seed=None,
                                           cpu=False, hardware="a100")
    own = local.model_copy(update={"extra_args": ["--block-size", "64"]})
    args = vllm_args(toy, own, weights="w", port=1, host="h", seed=None, cpu=True)
    assert args[len(args) - 1 - args[::-1].index("--block-size") + 1] == "64", "the profile's own value comes last"
