"""Flow `grace`: per model, one at a time - serve, run each study's experiments, always tear down.

Deployed as `grace/full-study` (prefect.yaml). A retry of a failed run resumes: finished models are skipped
(their done.json), finished rows are skipped (the checkpoints), and only the rest is asked again. A named
study (`study_id`) is one run folder that every run with that name continues, until nothing is left to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import State, flow, get_run_logger
from prefect.client.schemas.objects import FlowRun
from prefect.runtime import flow_run as current_run
from prefect.states import Completed

from flows.failures import describe, failure_message, label_current_model, reason
from grace.config import load_config
from grace.errors import UserInputError
from grace.named_study import NOTHING_LEFT, check_same_plan, nothing_left, study_folder
from grace.pipeline import backend_factory, make_plan, mark_model_done, model_done, plan_key
from grace.run import RunFolder, safe_name
from grace.serving import ManagedServer, stop_stale_servers
from tasks.analysis import compare_task, extract_task, report_task
from tasks.artifacts import publish_run, publish_stages
from tasks.experiments import experiment_task
from tasks.preflight import preflight_task

DEFAULT_STUDIES = ["study1", "study2"]
DEFAULT_EXPERIMENTS = ["exp1", "exp2"]


def run_id_of(name: str, flow_run_id: Any) -> str:
    """Stable across retries of one flow run, unique across flow runs."""
    return f"{name}-{str(flow_run_id)[:8]}"


def run_folder_name(parameters: dict[str, Any], name: str, flow_run_id: Any) -> str:
    """A named study's folder is its name; otherwise `run_id`, or one folder per flow run."""
    return parameters.get("study_id") or parameters.get("run_id") or run_id_of(name, flow_run_id)


def stop_run_servers(flow: Any, flow_run: FlowRun, state: Any) -> None:
    """Cancellation/crash hook: stop every server this run started, wherever the hook runs."""
    run_id = run_folder_name(flow_run.parameters, flow_run.name, flow_run.id)
    stopped = stop_stale_servers(run_id=run_id, only_orphans=False)
    print(f"grace: stopped {len(stopped)} server(s) of run {run_id} after {state.name}")


@flow(name="grace-model", flow_run_name="{model}", log_prints=True)
def model_run(
    model: str, run_dir: str, run_id: str, studies: list[str], experiments: list[str], sample: bool,
    profile: str, limit: int | None, max_tokens: int | None, concurrency: int | None, endpoint: str | None,
    task_retries: int,
    extract_llm: bool | None = None,
    preflight: bool = True,
) -> list[dict[str, Any]]:
    """One model: start its server, run every stage, stop the server (on success, failure or cancel)."""
    cfg = load_config()
    plan = make_plan(cfg, models=[model], studies=studies, experiments=experiments, sample=sample,
                     profile=profile, limit=limit, max_tokens=max_tokens, concurrency=concurrency)
    run = RunFolder(Path(run_dir))
    key = plan_key(studies=studies, experiments=experiments, sample=sample, limit=limit, max_tokens=max_tokens,
                   profile=profile)
    if model_done(run, model, key):
        print(f"{model}: already complete in {run.root}, skipped")
        import json

        from grace.pipeline import done_marker

        return json.loads(done_marker(run, model).read_text())["stages"]
    stop_stale_servers(run_id=run_id)  # a server left by a crashed earlier attempt of this run
    mcfg = plan.models[0]
    first = cfg.experiment(studies[0], experiments[0])
    factory = backend_factory(mcfg, profile, run_id=run_id, endpoint=endpoint, seed=first.sampling.seed,
                              log_dir=run.root / "logs")
    task = experiment_task.with_options(retries=task_retries)
    summaries: list[dict[str, Any]] = []
    extraction = cfg.experiments_file.extraction
    if extract_llm is not None:
        extraction = extraction.model_copy(update={"llm_fallback": extract_llm})
    with ManagedServer(factory) as server:
        print(f"{model}: server ready at {server.endpoint.base_url} (vLLM {server.endpoint.server_version}, "
              f"system message {server.endpoint.chat_form})")
        if preflight:
            preflight_task(server, mcfg, cfg, {n: (s, t) for n, (s, t, _) in plan.studies.items()}, experiments,
                           run.root / safe_name(model) / "preflight", extraction, plan)
        for exp_name in experiments:
            for name, (study, trials, _path) in plan.studies.items():
                exp = plan.experiment(cfg, name, exp_name)
                summaries.append(task(server, mcfg, study, trials, exp, run.stage_dir(model, name)))
        if "exp1" in experiments:
            for name in plan.studies:
                retry = cfg.experiment(name, "exp1").retry
                extract_task.with_options(retries=task_retries)(
                    server, name, run.stage_dir(model, name), extraction, retry)
    mark_model_done(run, model, key, summaries)
    publish_stages(model, summaries)
    return summaries


@flow(name="grace", log_prints=True, on_cancellation=[stop_run_servers], on_crashed=[stop_run_servers])
def grace(
    models: list[str] | None = None,
    studies: list[str] = DEFAULT_STUDIES,  # noqa: B006 - Prefect parameters are copied per run
    experiments: list[str] = DEFAULT_EXPERIMENTS,  # noqa: B006
    sample: bool = True,
    profile: str = "local",
    out: str = "results",
    run_id: str | None = None,
    limit: int | None = None,
    max_tokens: int | None = None,
    concurrency: int | None = None,
    endpoint: str | None = None,
    task_retries: int = 2,
    overwrite: bool = False,
    extract_llm: bool | None = None,  # None: config's extraction.llm_fallback; false: rules only (quick runs)
    preflight: bool = True,  # a few trials of every stage first; a model that fails them stops in minutes
    study_id: str | None = None,  # a named study: results/<study_id>/, continued by every run with this name
) -> dict[str, Any] | State[Any]:
    """Run the study: every chosen model, one at a time, through every chosen study and experiment."""
    logger = get_run_logger()
    cfg = load_config()
    plan = make_plan(cfg, models=models, studies=studies, experiments=experiments, sample=sample,
                     profile=profile, limit=limit, max_tokens=max_tokens, concurrency=concurrency)
    if study_id and run_id:
        raise UserInputError(f"pass study_id ({study_id!r}) or run_id ({run_id!r}), not both: both name the folder")
    rid = study_id or run_id or run_id_of(current_run.name or "local", current_run.id)
    run = study_folder(out, study_id) if study_id else RunFolder((Path(out) / rid).resolve())
    params = {"models": [m.name for m in plan.models], "studies": studies, "experiments": experiments,
              "sample": sample, "profile": profile, "limit": limit, "max_tokens": max_tokens,
              "flow_run_id": str(current_run.id), "study_id": study_id}
    if study_id:
        check_same_plan(run, study_id, params)
        key = plan_key(studies=studies, experiments=experiments, sample=sample, limit=limit,
                       max_tokens=max_tokens, profile=profile)
        if nothing_left(run, params["models"], key):
            logger.info("study %s: every model is done in %s: nothing left to do", study_id, run.root)
            return Completed(message=f"study {study_id}: {NOTHING_LEFT} ({run.root})",
                             data={"run_dir": str(run.root), "stages": []})
    # a completed run folder is never re-entered unasked; a named study is continued
    run.begin(cfg, params, overwrite=overwrite, resume=bool(study_id))
    logger.info("run %s: %d model(s) x %s x %s -> %s", rid, len(plan.models), studies, experiments, run.root)
    summaries: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    for m in plan.models:
        label_current_model(current_run.id, m.name)
        state = model_run(
            m.name, str(run.root), rid, studies, experiments, sample, profile, limit, max_tokens, concurrency,
            endpoint, task_retries, extract_llm, preflight, return_state=True,
        )
        if state.is_completed():
            summaries += state.result()
        else:
            failures[m.name] = describe(m.name, state)
            logger.error("model %s did not finish: %s", m.name, failures[m.name])
    if summaries:  # the report and the comparison cover whatever finished, failures included
        for step in (report_task, compare_task):
            state = step(run.root, return_state=True)
            if not state.is_completed():
                failures[step.name] = f"failed: {reason(state)}"
    publish_run(run.root, summaries, failures)
    run.end("failed" if failures else "completed", {"stages": summaries, "failures": failures})
    if failures:
        raise RuntimeError(failure_message(failures))
    return {"run_dir": str(run.root.resolve()), "stages": summaries}
