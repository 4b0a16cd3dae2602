"""The study protocol's building blocks, without Prefect: plan, serve, run a stage, mark a model done.

The Prefect flow (flows/grace_flow.py) and the direct `grace run` command compose these the same way, so the
orchestration overhead can be measured against the same work.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from grace.checkpoint import write_json_atomic
from grace.config import Config, ExperimentConfig, ModelConfig
from grace.errors import ConfigError, GraceError
from grace.progress import Progress
from grace.query import StageResult, run_exp1
from grace.run import RunFolder, safe_name
from grace.serving import ExternalServer, LocalVLLMServer, ManagedServer
from grace.serving.managed import Backend
from grace.serving.watch import read_waits, summarize_waits
from grace.studies import Study, Trial, get_study

EXPERIMENTS = ("exp1", "exp2")


class StageIncomplete(GraceError):
    """Some rows of a stage failed after all request retries; a retry of the stage redoes only those."""


@dataclass
class Plan:
    models: list[ModelConfig]
    studies: dict[str, tuple[Study, list[Trial], Path]]
    experiments: list[str]
    profile: str
    overrides: dict[str, Any] = field(default_factory=dict)

    def experiment(self, cfg: Config, study: str, experiment: str) -> ExperimentConfig:
        exp = cfg.experiment(study, experiment)
        sampling = {k: v for k, v in self.overrides.items() if k in ("max_tokens", "replications") and v}
        if sampling:
            exp = exp.model_copy(update={"sampling": exp.sampling.model_copy(update=sampling)})
        if self.overrides.get("concurrency"):
            exp = exp.model_copy(update={"concurrency": self.overrides["concurrency"]})
        return exp


def make_plan(
    cfg: Config,
    *,
    models: list[str] | None,
    studies: list[str],
    experiments: list[str],
    sample: bool,
    profile: str,
    limit: int | None = None,
    max_tokens: int | None = None,
    concurrency: int | None = None,
) -> Plan:
    """Check everything a run needs (models, profile, studies, every input row) before anything starts."""
    if not studies:
        raise ConfigError("no studies chosen")
    unknown = [e for e in experiments if e not in EXPERIMENTS]
    if unknown or not experiments:
        raise ConfigError(f"unknown experiment(s) {unknown or experiments} (known: {', '.join(EXPERIMENTS)})")
    chosen = cfg.models_for(profile, models)
    loaded = {}
    for name in studies:
        study = get_study(name)
        path = cfg.study_file(name, sample=sample)
        for e in experiments:
            cfg.experiment(name, e)
        loaded[name] = (study, study.load(path, limit=limit), path)
    return Plan(chosen, loaded, list(experiments), profile,
                {"max_tokens": max_tokens, "concurrency": concurrency})


def backend_factory(
    model: ModelConfig, profile: str, *, run_id: str, endpoint: str | None = None, seed: int | None = 2026,
    log_dir: Path | None = None,
) -> Callable[[], Backend]:
    """How to bring up this model's server: an external URL, a local process, or (cluster) Kubernetes."""
    if endpoint:  # the profile's batch slots, if the model has that profile, set the default concurrency
        slots = model.profiles[profile].batch_slots if profile in model.profiles else None
        return lambda: ExternalServer(endpoint, model, batch_slots=slots, profile=profile)
    if profile == "local":
        log_path = (log_dir / f"vllm-{safe_name(model.name)}.log") if log_dir else None
        return lambda: LocalVLLMServer(model, profile=profile, run_id=run_id, seed=seed, log_path=log_path)
    from grace.manifests.settings import load_cluster_settings
    from grace.serving.kubernetes import KubernetesServer

    settings = load_cluster_settings()
    return lambda: KubernetesServer(model, profile=profile, settings=settings, run_id=run_id, seed=seed)


def run_stage(
    server: ManagedServer, model: ModelConfig, study: Study, trials: list[Trial], exp: ExperimentConfig,
    out_dir: Path, progress: Progress | None = None,
) -> StageResult:
    """One model x study x experiment, resumable; raises StageIncomplete when rows failed for good."""
    if exp.experiment == "exp1":
        endpoint = server.ensure_alive()
        result = asyncio.run(run_exp1(endpoint, study, trials, exp, out_dir, progress=progress))
    elif exp.scoring_path == "inprocess":  # transformers in this process (a GPU Job on the cluster)
        from grace.scoring import run_exp2_inprocess

        result = run_exp2_inprocess(model.weights, study, trials, out_dir, model=model.name,
                                    revision=model.revision, progress=progress, chat_form=model.system_prompt)
    else:
        from grace.scoring import run_exp2  # the server path: one request per branch point of the options

        endpoint = server.ensure_alive()
        result = asyncio.run(run_exp2(endpoint, study, trials, exp, out_dir, progress=progress))
    if result.failed:
        raise StageIncomplete(
            f"{exp.key} for {model.name}: {result.failed} of {result.total} rows failed after retries "
            f"(see {result.checkpoint}); a retry redoes only those"
        )
    return result


def stage_summary(model: str, result: StageResult) -> dict[str, Any]:
    """One stage's row for run.json, done.json and the flow's artifact. The server waits (how long the stage
    waited for its server and why, grace.serving.watch) count every attempt of the stage, earlier task runs
    and reruns included: they are read from the stage folder's server-waits.jsonl."""
    d = asdict(result)
    d.pop("load_report", None)
    return {
        "model": model, "study": result.study, "experiment": result.experiment, "total": result.total,
        "done_before": result.skipped, "ok": result.ok, "failed": result.failed,
        "other": json.dumps(result.other), "wall_s": round(result.wall_s, 2), "rows_per_s": round(result.rps, 2),
        "requests_sent": result.sent, "concurrency": result.concurrency, "checkpoint": str(d["checkpoint"]),
        **summarize_waits(read_waits(Path(result.checkpoint).parent, result.experiment)),
    }


def plan_key(
    *, studies: list[str], experiments: list[str], sample: bool, limit: int | None, max_tokens: int | None,
    profile: str,
) -> dict[str, Any]:
    """What a model's done.json must match for the model to count as finished in this run folder."""
    return {"studies": list(studies), "experiments": list(experiments), "sample": sample, "limit": limit,
            "max_tokens": max_tokens, "profile": profile}


def done_marker(run: RunFolder, model: str) -> Path:
    return run.root / safe_name(model) / "done.json"


def model_done(run: RunFolder, model: str, key: dict[str, Any]) -> bool:
    """True when this model finished every stage of this run with the same plan (a retry skips it)."""
    path = done_marker(run, model)
    if not path.exists():
        return False
    try:
        return json.loads(path.read_text()).get("plan") == key
    except ValueError:
        return False


def done_stages(run: RunFolder, model: str) -> list[dict[str, Any]]:
    """The stage summaries a finished model recorded in its done.json."""
    return list(json.loads(done_marker(run, model).read_text()).get("stages") or [])


def _extracted_marker(run: RunFolder, model: str) -> Path:
    return run.root / safe_name(model) / "extracted_by.json"


def extraction_done(run: RunFolder, model: str, extractor: str) -> bool:
    """True when `extractor` (a separate extraction model) already read this model's replies in this run."""
    path = _extracted_marker(run, model)
    try:
        return path.exists() and json.loads(path.read_text()).get("extraction_model") == extractor
    except ValueError:
        return False


def mark_extraction_done(run: RunFolder, model: str, extractor: str) -> None:
    write_json_atomic(_extracted_marker(run, model), {"extraction_model": extractor})


def mark_model_done(run: RunFolder, model: str, key: dict[str, Any], stages: list[dict[str, Any]]) -> None:
    write_json_atomic(done_marker(run, model), {"plan": key, "stages": stages})
