"""Manifest generation: full sets for both profiles, schema validation, policy checks, bad configs failing."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import yaml

from grace.cli import main
from grace.config import Config, load_config
from grace.errors import ConfigError
from grace.manifests.build import GPU, build_all, dns_name, vllm_deployment
from grace.manifests.policy import check_object, check_objects, errors
from grace.manifests.settings import ClusterSettings, load_cluster_settings
from grace.manifests.validate import schema_errors, validate_objects
from grace.manifests.write import read_manifests

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def settings() -> ClusterSettings:
    return load_cluster_settings(ROOT / "config" / "cluster.yaml")


def container(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("profile", ["rtx3090", "a100"])
def test_full_set_valid_and_policy_clean(cfg: Config, settings: ClusterSettings, profile: str) -> None:
    objs = build_all(cfg, profile, settings, "run-2026")
    models = cfg.models_for(profile)
    kinds = [o["kind"] for o in objs]
    assert kinds.count("Deployment") == kinds.count("Service") == len(models)
    assert kinds.count("Job") == len(models) * (len(cfg.experiments) + 1)  # + each model's prefetch Job
    assert kinds.count("PersistentVolumeClaim") == 2
    assert kinds.count("ServiceAccount") == kinds.count("Role") == kinds.count("RoleBinding") == 1
    assert kinds.count("CronJob") == 1
    assert len(objs) >= 46
    assert validate_objects(objs, settings.kubernetes_version) == []
    assert errors(check_objects(objs, settings)) == []
    for o in objs:
        lab = o["metadata"]["labels"]
        assert lab["app.kubernetes.io/part-of"] == "grace" and lab["grace/run-id"] == "run-2026"
        assert {"grace/model", "grace/study", "grace/experiment"} <= set(lab)
        assert o["metadata"]["name"].startswith(settings.name_prefix + "-")


def test_runner_rbac_binds_the_account_the_runners_use(cfg: Config, settings: ClusterSettings) -> None:
    objs = build_all(cfg, "a100", settings, "run-2026")
    by_kind = {o["kind"]: o for o in objs if o["kind"] in ("ServiceAccount", "Role", "RoleBinding")}
    binding = by_kind["RoleBinding"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": by_kind["Role"]["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": by_kind["ServiceAccount"]["metadata"]["name"],
                                    "namespace": settings.namespace}]
    jobs = [o for o in objs if o["kind"] == "Job"]
    assert {j["spec"]["template"]["spec"]["serviceAccountName"] for j in jobs} == {settings.service_account}
    template = json.loads((ROOT / "deployments" / "kubernetes" / "base-job-template.json").read_text())
    assert template["variables"]["properties"]["service_account_name"]["default"] == settings.service_account
    # no cluster-wide rights, no secrets: the Role only manages the vLLM server and reads why it fails
    resources = {r for rule in by_kind["Role"]["rules"] for r in rule["resources"]}
    assert "secrets" not in resources and resources <= {"deployments", "services", "jobs", "pods", "pods/log",
                                                        "events"}
    # the namespace's default account is bound, not created
    default = build_all(cfg, "a100", settings.model_copy(update={"service_account": "default"}), "run-2026")
    assert [o["kind"] for o in default].count("ServiceAccount") == 0
    assert [o for o in default if o["kind"] == "RoleBinding"][0]["subjects"][0]["name"] == "default"


def test_deployment_contents(cfg: Config, settings: ClusterSettings) -> None:
    dep = vllm_deployment(cfg.model("llama3-70b-awq"), "rtx3090", settings, "r1")
    c = container(dep)
    args = c["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "4"
    assert args[args.index("--quantization") + 1] == "awq_marlin"
    assert args[args.index("--download-dir") + 1].startswith(settings.model_cache_mount)
    assert c["resources"]["requests"][GPU] == c["resources"]["limits"][GPU] == "4"
    assert c["startupProbe"]["httpGet"]["path"] == "/v1/models"
    assert c["readinessProbe"]["httpGet"]["path"] == "/v1/models"
    token = next(e for e in c["env"] if e["name"] == "HF_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "token"}
    spec = dep["spec"]["template"]["spec"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}} in spec["volumes"]
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == ["NVIDIA-GeForce-RTX-3090"]
    # the 4-GPU profile is covered by its exception: a warning, not an error
    vs = check_object(dep, settings)
    assert [v.severity for v in vs] == ["warning"] and "exception" in vs[0].message


def test_prefetch_job_and_cleanup_cronjob(cfg: Config, settings: ClusterSettings) -> None:
    """Before any GPU: the prefetch Job (CPU only, the token from its Secret, the model cache); the server reads
    what it fetched, offline. And the janitor that deletes servers whose lease ran out."""
    objs = build_all(cfg, "a100", settings, "r1", ["gemma2-27b"])
    job = next(o for o in objs if o["kind"] == "Job" and o["metadata"]["name"].endswith("-prefetch"))
    c = container(job)
    assert c["command"] == ["grace", "prefetch", "--model", "gemma2-27b", "--revision", "main", "--cache-dir",
                            "/models/hf/hub", "--termination-log", "/dev/termination-log"]
    assert GPU not in c["resources"]["limits"] and "affinity" not in job["spec"]["template"]["spec"]
    assert c["image"] == settings.images.runner and c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert c["env"][0]["valueFrom"]["secretKeyRef"]["name"] == settings.hf_token_secret.name
    assert job["spec"]["activeDeadlineSeconds"] == settings.prefetch.deadline_s
    assert job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"].endswith("model-cache")
    dep = container(next(o for o in objs if o["kind"] == "Deployment"))
    assert dep["args"][dep["args"].index("--download-dir") + 1] == "/models/hf/hub"
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in dep["env"]
    cron = next(o for o in objs if o["kind"] == "CronJob")
    spec = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert spec["containers"][0]["command"] == ["grace", "cleanup", "--expired"]
    assert spec["serviceAccountName"] == settings.service_account and cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert cron["spec"]["schedule"] == settings.lease.cleanup_schedule
    assert schema_errors(job, "1.30") == schema_errors(cron, "1.30") == []
    assert errors(check_object(job, settings)) == errors(check_object(cron, settings)) == []
    long = copy.deepcopy(cron)
    long["metadata"]["name"] = "jdoe-" + "x" * 50
    assert any("longer than 52" in v.message for v in check_object(long, settings))


def test_jobs_guaranteed_qos(cfg: Config, settings: ClusterSettings) -> None:
    jobs = [o for o in build_all(cfg, "a100", settings, "r1") if o["kind"] == "Job"]
    assert jobs, "the a100 profile has Jobs"
    for o in jobs:
        res = container(o)["resources"]
        assert res["requests"] == res["limits"]
        assert o["spec"]["backoffLimit"] == settings.jobs.backoff_limit
        assert o["spec"]["ttlSecondsAfterFinished"] == settings.jobs.ttl_seconds_after_finished


def test_inprocess_exp2_job_gets_gpus(tmp_path: Path, settings: ClusterSettings) -> None:
    cdir = tmp_path / "cfg"
    shutil.copytree(ROOT / "config", cdir)
    exp = yaml.safe_load((cdir / "experiments.yaml").read_text())
    exp["experiments"][2]["scoring_path"] = "inprocess"
    (cdir / "experiments.yaml").write_text(yaml.safe_dump(exp))
    objs = build_all(load_config(cdir), "a100", settings, "r1", ["gemma2-2b"])
    job = next(o for o in objs if o["kind"] == "Job" and o["metadata"]["labels"]["grace/experiment"] == "exp2"
               and o["metadata"]["labels"]["grace/study"] == "study1")
    c = container(job)
    assert c["resources"]["limits"][GPU] == "1" and "--endpoint" not in c["command"]
    assert c["command"][:2] == ["grace", "score"] and c["command"][-2:] == ["--path", "inprocess"]
    assert "affinity" in job["spec"]["template"]["spec"]
    assert validate_objects(objs, "1.30") == [] and errors(check_objects(objs, settings)) == []


def _bad_models(tmp_path: Path, edit) -> Path:
    cdir = tmp_path / "cfg"
    shutil.copytree(ROOT / "config", cdir)
    models = yaml.safe_load((cdir / "models.yaml").read_text())
    edit(models["models"])
    (cdir / "models.yaml").write_text(yaml.safe_dump(models))
    return cdir


@pytest.mark.parametrize("edit, rule", [
    (lambda m: m["llama3-70b-awq"]["profiles"]["rtx3090"].pop("exception"), "gpu-exception"),
    (lambda m: m["llama3-70b-awq"]["profiles"]["a100"].update(tensor_parallel_size=1), "tensor-parallel"),
])
def test_bad_model_configs_fail_policy(tmp_path: Path, settings: ClusterSettings, edit, rule: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    cdir = _bad_models(tmp_path, edit)
    profile = "rtx3090" if rule == "gpu-exception" else "a100"
    objs = build_all(load_config(cdir), profile, settings, "r1")
    bad = errors(check_objects(objs, settings))
    assert bad and {v.rule for v in bad} == {rule}
    assert main(["manifests", "--config-dir", str(cdir), "--profile", profile, "--out", str(tmp_path / "o")]) == 2
    out = capsys.readouterr()
    assert f"[{rule}]" in out.out and "policy violation" in out.err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("field,value", [("cpu_limit", 6), ("memory_gib_limit", 40)])
def test_limit_ratio_rejected_by_config_and_by_policy(tmp_path: Path, cfg: Config, settings: ClusterSettings,
                                                      field: str, value: float) -> None:
    """The 20% rule is enforced twice: when the config loads, and on every generated (or edited) object."""
    cdir = _bad_models(tmp_path, lambda m: m["gemma2-2b"]["profiles"]["a100"]["resources"].update({field: value}))
    with pytest.raises(ConfigError, match="more than 20%"):
        load_config(cdir)
    dep = vllm_deployment(cfg.model("gemma2-2b"), "a100", settings, "r1")
    res = container(dep)["resources"]
    key = "cpu" if field == "cpu_limit" else "memory"
    res["limits"][key] = "6" if key == "cpu" else "40Gi"
    bad = errors(check_objects([dep], settings))
    assert {v.rule for v in bad} == {"limit-ratio"}


def test_gemma2_float16_rejected_by_config(tmp_path: Path) -> None:
    cdir = _bad_models(tmp_path, lambda m: m["gemma2-9b"]["profiles"]["a100"].update(dtype="float16"))
    with pytest.raises(ConfigError, match="Gemma-2 must not run in float16"):
        load_config(cdir)


def test_policy_catches_hand_edited_objects(cfg: Config, settings: ClusterSettings) -> None:
    dep = vllm_deployment(cfg.model("gemma2-9b"), "a100", settings, "r1")
    bad = copy.deepcopy(dep)
    args = container(bad)["args"]
    args[args.index("--dtype") + 1] = "float16"
    container(bad)["env"].append({"name": "HF_TOKEN_PLAIN", "value": "hf_" + "a" * 30})
    container(bad)["resources"]["requests"][GPU] = "2"
    bad["metadata"]["name"] = "jdoe-Gemma_9B"
    rules = {v.rule for v in errors(check_object(bad, settings))}
    assert rules == {"gemma2-dtype", "no-inline-secrets", "gpu-request-equals-limit", "dns-name"}
    del bad["metadata"]["labels"]["grace/run-id"]
    assert "labels" in {v.rule for v in check_object(bad, settings)}


def test_schema_validation_is_strict(cfg: Config, settings: ClusterSettings) -> None:
    dep = vllm_deployment(cfg.model("gemma2-2b"), "a100", settings, "r1")
    typo = copy.deepcopy(dep)
    container(typo)["resource"] = container(typo).pop("resources")
    (msg,) = schema_errors(typo, "1.30")
    assert "spec.template.spec.containers.0" in msg and "'resource' was unexpected" in msg
    wrong_type = copy.deepcopy(dep)
    wrong_type["spec"]["replicas"] = "one"
    assert schema_errors(wrong_type, "1.30")


def test_dns_name() -> None:
    assert dns_name("jdoe", "r1", "llama3.1-8b", "vllm") == "jdoe-r1-llama3-1-8b-vllm"
    long = dns_name("jdoe", "x" * 80, "model")
    assert len(long) == 63 and long != dns_name("jdoe", "x" * 81, "model")


def test_cli_generate_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "k8s"
    assert main(["manifests", "--profile", "rtx3090", "--out", str(out), "--run-id", "r7"]) == 0
    printed = capsys.readouterr().out
    files = sorted(p.name for p in out.glob("*.yaml"))
    n = len(files) - 1  # kustomization.yaml
    assert f"wrote {n} objects" in printed and n >= 36
    kust = yaml.safe_load((out / "kustomization.yaml").read_text())
    assert sorted(kust["resources"]) == [f for f in files if f != "kustomization.yaml"]
    assert len(read_manifests(out)) == n
    assert main(["manifests", "--check", str(out)]) == 0
    assert f"ok: {n} objects" in capsys.readouterr().out
    # break one file by hand: --check must fail with exit 2 naming the object and field
    f = next(out.glob("deployment-*.yaml"))
    obj = yaml.safe_load(f.read_text())
    obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    f.write_text(yaml.safe_dump(obj))
    assert main(["manifests", "--check", str(out)]) == 2
    assert "imagePullPolicyy" in capsys.readouterr().out


def test_bad_cluster_settings(tmp_path: Path) -> None:
    data = yaml.safe_load((ROOT / "config" / "cluster.yaml").read_text())
    data["name_prefix"] = "J_Doe"
    p = tmp_path / "cluster.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="name_prefix"):
        load_cluster_settings(p)


@pytest.mark.parametrize("profile", ["rtx3090", "a100"])
def test_generated_files_have_no_yaml_aliases(tmp_path: Path, profile: str) -> None:
    """Objects share values (labels, probes): each file spells them out, with no `&id001` anchor or `*id001`."""
    assert main(["manifests", "--profile", profile, "--out", str(tmp_path), "--run-id", "r7"]) == 0
    files = sorted(tmp_path.glob("*.yaml"))
    assert len(files) > 30
    for f in files:
        events = list(yaml.parse(f.read_text()))
        shared = [e for e in events if isinstance(e, yaml.AliasEvent) or getattr(e, "anchor", None)]
        assert not shared, f"{f.name}: YAML anchors/aliases {[e.anchor for e in shared]}"
