"""The study protocol's building blocks, without Prefect: plan, serve, run a stage (a model's done marker is the
run folder's, grace.run.RunFolder).

The Prefect flow (flows/grace_flow.py) and the orchestration benchmark's direct runner (benchmarks/direct_run.py)
compose these the same way, so the orchestration overhead can be measured against the same work.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from grace.config import (
    EXPERIMENTS,
    Config,
    ExperimentConfig,
    ExperimentName,
    ExtractionConfig,
    ModelConfig,
    Retry,
    ScoringPath,
)
from grace.errors import ConfigError, GraceError
from grace.extract.engine import ExtractSummary, extract_stage
from grace.manifests.settings import load_cluster_settings
from grace.progress import Progress
from grace.query import run_exp1
from grace.run import RunFolder, safe_name
from grace.scoring import run_exp2, run_exp2_inprocess
from grace.server_waits import read_waits, summarize_waits
from grace.serving import Endpoint, ExternalServer, LocalVLLMServer, ManagedServer
from grace.serving.managed import Backend
from grace.stage import StageResult
from grace.studies import Study, Trial


class StageIncomplete(GraceError):
    """Some rows of a stage failed after all request retries; a retry of the stage redoes only those."""


@dataclass(frozen=True)
class StageJob:
    """One model x study x experiment of a plan: what run_stage (and the flow's experiment task) is given."""

    study: Study
    trials: list[Trial]
    exp: ExperimentConfig
    out_dir: Path


@dataclass(frozen=True)
class ExtractionJob:
    """One model x study's extraction: its study folder, and the retry settings of the LLM stage's requests."""

    study: Study
    study_dir: Path
    retry: Retry


@dataclass
class Plan:
    """The run plan: which models, studies (with their trials and file) and experiments a run does, checked
    before anything starts (make_plan). Not the GPU-hour estimate of `grace plan` (grace.gpu_hours)."""

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

    def server_seed(self, cfg: Config) -> int | None:
        """The seed a model's server starts with: the first experiment's."""
        return cfg.experiment(next(iter(self.studies)), self.experiments[0]).sampling.seed

    def stage_jobs(self, cfg: Config, run: RunFolder, model: str) -> list[StageJob]:
        """One model's stages in the protocol's order: each experiment over every study."""
        return [StageJob(study, trials, self.experiment(cfg, name, e), run.study_dir(model, name))
                for e in self.experiments for name, (study, trials, _path) in self.studies.items()]

    def extraction_jobs(self, cfg: Config, run: RunFolder, model: str) -> list[ExtractionJob]:
        """Each study's extraction of the model's Exp 1 replies (none when the plan has no Exp 1)."""
        if "exp1" not in self.experiments:
            return []
        return [ExtractionJob(study, run.study_dir(model, name), cfg.experiment(name, "exp1").retry)
                for name, (study, _trials, _path) in self.studies.items()]


def make_plan(
    cfg: Config,
    *,
    models: list[str] | None,
    studies: list[Study],
    experiments: list[str],
    sample: bool,
    profile: str,
    limit: int | None = None,
    max_tokens: int | None = None,
    concurrency: int | None = None,
) -> Plan:
    """Check everything a run needs (models, profile, studies, every input row) before anything starts. The
    studies are objects: their names were looked up at the edge (the flow's parameter checks, the command line)."""
    if not studies:
        raise ConfigError("no studies chosen")
    unknown = [e for e in experiments if e not in EXPERIMENTS]
    if unknown or not experiments:
        raise ConfigError(f"unknown experiment(s) {unknown or experiments} (known: {', '.join(EXPERIMENTS)})")
    chosen = cfg.models_for(profile, models)
    loaded = {}
    for study in studies:
        path = cfg.study_file(study.name, sample=sample)
        for e in experiments:
            cfg.experiment(study.name, e)
        loaded[study.name] = (study, study.load(path, limit=limit), path)
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
    # Imported here, not at the top: the kubernetes client takes about 0.2 s to import (measured with the rest of
    # this module loaded), and only the cluster profiles need it; the flow and every CLI verb import this module.
    from grace.serving.kubernetes import KubernetesServer

    settings = load_cluster_settings()
    return lambda: KubernetesServer(model, profile=profile, settings=settings, run_id=run_id, seed=seed)


class StageRunner(Protocol):
    """One model x study x experiment on one path: the model's server (started, or restarted if it died, by
    `server.ensure_alive()`), the trials, the experiment's settings, the study folder."""

    def __call__(self, server: ManagedServer, model: ModelConfig, study: Study, trials: list[Trial],
                 exp: ExperimentConfig, out_dir: Path, progress: Progress | None) -> StageResult: ...


def _chat(server: ManagedServer, model: ModelConfig, study: Study, trials: list[Trial], exp: ExperimentConfig,
          out_dir: Path, progress: Progress | None) -> StageResult:
    return asyncio.run(run_exp1(server.ensure_alive(), study, trials, exp, out_dir, progress=progress))


def _scored_by_server(server: ManagedServer, model: ModelConfig, study: Study, trials: list[Trial],
                      exp: ExperimentConfig, out_dir: Path, progress: Progress | None) -> StageResult:
    return asyncio.run(run_exp2(server.ensure_alive(), study, trials, exp, out_dir, path=exp.scoring_path,
                                progress=progress))


def _scored_in_process(server: ManagedServer, model: ModelConfig, study: Study, trials: list[Trial],
                       exp: ExperimentConfig, out_dir: Path, progress: Progress | None) -> StageResult:
    """transformers in this process (a GPU Job on the cluster): the server is not used."""
    return run_exp2_inprocess(model.weights, study, trials, out_dir, model=model.name, revision=model.revision,
                              progress=progress, chat_form=model.system_prompt)


# Which stage runs an experiment on its path (ExperimentConfig.scoring_path; Exp 1 is always "server").
STAGES: dict[tuple[ExperimentName, ScoringPath], StageRunner] = {
    ("exp1", "server"): _chat,
    ("exp2", "server"): _scored_by_server,  # one request per branch point of the options' token trie
    ("exp2", "per-option"): _scored_by_server,  # one prompt_logprobs request per option
    ("exp2", "inprocess"): _scored_in_process,
}


def run_stage(
    server: ManagedServer, model: ModelConfig, study: Study, trials: list[Trial], exp: ExperimentConfig,
    out_dir: Path, progress: Progress | None = None,
) -> StageResult:
    """One model x study x experiment, resumable; raises StageIncomplete when rows failed for good."""
    result = STAGES[exp.experiment, exp.scoring_path](server, model, study, trials, exp, out_dir, progress)
    if result.failed:
        raise StageIncomplete(
            f"{exp.key} for {model.name}: {result.failed} of {result.total} rows failed after retries "
            f"(see {result.checkpoint}); a retry redoes only those"
        )
    return result


def extraction_settings(cfg: Config, llm: bool | None = None) -> ExtractionConfig:
    """The config's extraction settings, with a run's switch for the LLM stage applied (None: as configured)."""
    ex = cfg.experiments_file.extraction
    return ex if llm is None else ex.model_copy(update={"llm_fallback": llm})


def own_server_extraction(extraction: ExtractionConfig) -> ExtractionConfig:
    """What the extraction right after a model's experiments does on the model's own server: the LLM stage too,
    unless a separate extraction model reads what the rules left, once every study model is done."""
    own = extraction.llm_fallback and not extraction.separate
    return extraction if own else extraction.model_copy(update={"llm_fallback": False})


def run_extraction(source: ManagedServer | Endpoint | None, study: Study, study_dir: Path,
                   settings: ExtractionConfig, retry: Retry, progress: Progress | None = None
                   ) -> tuple[ExtractSummary, Endpoint | None]:
    """One model x study's extraction: the rules, then, when `settings` enable it, the LLM stage on `source` (the
    model's own server, restarted if it died; the extraction model's server; an external endpoint). Returns
    the summary and the endpoint the LLM stage used (None: the rules alone)."""
    endpoint = None
    if source is not None and settings.llm_fallback:
        endpoint = source.ensure_alive() if isinstance(source, ManagedServer) else source
    summary = extract_stage(study_dir, study, endpoint, concurrency=settings.concurrency,
                            max_tokens=settings.max_tokens, retry=retry, progress=progress)
    return summary, endpoint


def stage_summary(model: str, result: StageResult) -> dict[str, Any]:
    """One stage's row for run.json, done.json and the flow's artifact. The server waits (how long the stage
    waited for its server and why, grace.serving.gate) count every attempt of the stage, earlier task runs
    and reruns included: they are read from the study folder's server-waits.jsonl."""
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
