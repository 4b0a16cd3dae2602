"""Flow `grace`: per model, one at a time - its weights fetched (ahead: while the previous model was served),
serve, preflight, run each study's experiments, always tear down; then the extraction model (when it is not
the model under test), the data-quality report, the comparison with the human data, the all-models tables for
the lab's analysis (RUN/analysis/), and the verdict.

Deployed as `grace/full-study` (prefect.yaml). A retry of a failed run resumes: finished models are skipped
(their done.json), finished rows are skipped (the checkpoints), and only the rest is asked again. A named
study (`study_id`) is one run folder that every run with that name continues, until nothing is left to do.
The parameters are grace.params.RunParams, one field each (their help text shows in the UI's run form).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from prefect import State, flow, get_run_logger
from prefect.blocks.system import Secret
from prefect.client.schemas.objects import FlowRun
from prefect.runtime import flow_run as current_run
from prefect.states import Completed, Failed

from flows.failures import describe, failure_message, label_current_model, reason
from grace.config import Config, ExtractionConfig, ModelConfig, load_config
from grace.errors import UserInputError
from grace.extract.extractor import external_endpoint
from grace.gpu_time import record_lives
from grace.named_study import NOTHING_LEFT, check_same_plan, nothing_left, study_folder
from grace.params import (
    FIELDS,
    ConcurrencyT,
    CountT,
    EndpointT,
    ExperimentsT,
    MaxTokensT,
    ModelsT,
    NameT,
    ProfileT,
    RetriesT,
    RunParams,
    StudiesT,
    SwitchT,
)
from grace.pipeline import (
    Plan,
    backend_factory,
    extraction_settings,
    make_plan,
    own_server_extraction,
    plan_key,
)
from grace.prefetching import provenance, read_record, served_model
from grace.report.limits import mass_limit, model_verdicts
from grace.report.verdict import read_verdicts, verdict_message
from grace.run import RunFolder, safe_name
from grace.serving import Endpoint, ManagedServer, stop_stale_servers
from grace.serving.prefetch import PrefetchError
from tasks.analysis import compare_task, extract_task, report_task, tables_task, view_task
from tasks.artifacts import publish_run, publish_stages
from tasks.experiments import experiment_task
from tasks.prefetch import prefetch_task
from tasks.preflight import preflight_task
from tasks.verdict import STOPPED, stage_outcome, verdict_state


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


def plan_of(cfg: Config, params: RunParams, models: list[str] | None) -> Plan:
    return make_plan(cfg, models=models, studies=params.study_objects(cfg), experiments=list(params.experiments),
                     sample=params.sample, profile=params.profile, limit=params.limit, max_tokens=params.max_tokens,
                     concurrency=params.concurrency)


def key_of(cfg: Config, params: RunParams) -> dict[str, Any]:
    return plan_key(studies=params.study_names(cfg), experiments=list(params.experiments), sample=params.sample,
                    limit=params.limit, max_tokens=params.max_tokens, profile=params.profile)


def weights_for(run: RunFolder, mcfg: ModelConfig, profile: str, run_id: str) -> ModelConfig:
    """The model's weights, ready before its server (and its GPUs) are asked for: fetched ahead while the previous
    model was served (this attempt's record), else now. A failed prefetch stops the model here with its reason;
    the model is served at the commit its prefetch resolved."""
    record = read_record(run, mcfg.name)
    if record is None or record.attempt != run.attempt:
        prefetch_task(mcfg.name, profile, str(run.root), run_id, run.attempt, return_state=True)
        record = read_record(run, mcfg.name)
    if record is None or not record.ok:
        raise PrefetchError(record.reason if record and record.reason else f"{mcfg.name}: no prefetch result")
    return served_model(run, mcfg)


@flow(name="grace-model", flow_run_name="{model}", log_prints=True)
def model_run(model: str, params: RunParams, run_dir: str, run_id: str, next_model: str | None = None
              ) -> list[dict[str, Any]] | State[Any]:
    """One model: its weights, start its server, preflight it, run every stage, stop the server (success, failure,
    cancel). While it is served, `next_model`'s weights are fetched (its prefetch needs no GPU).
    Ends "Fit" / "Not fit" (its own stages judged as the report will), or "Stopped at preflight"."""
    cfg = load_config()
    plan = plan_of(cfg, params, [model])
    run = RunFolder(Path(run_dir))
    key = key_of(cfg, params)
    if run.model_done(model, key):
        print(f"{model}: already complete in {run.root}, skipped")
        return run.done_stages(model)
    stop_stale_servers(run_id=run_id)  # a server left by a crashed earlier attempt of this run
    mcfg = plan.models[0] if params.endpoint else weights_for(run, plan.models[0], params.profile, run_id)
    factory = backend_factory(mcfg, params.profile, run_id=run_id, endpoint=params.endpoint,
                              seed=plan.server_seed(cfg), log_dir=run.root / "logs")
    here = own_server_extraction(extraction_settings(cfg, params.extract_llm))  # as benchmarks/direct_run.py
    separate = extraction_settings(cfg, params.extract_llm).separate  # a separate model reads the rest later
    task = experiment_task.with_options(retries=params.task_retries)
    summaries: list[dict[str, Any]] = []
    managed = ManagedServer(factory)
    ahead = None
    try:
        with managed as server:
            ep = server.endpoint
            print(f"{model}: server ready at {ep.base_url} (vLLM {ep.server_version}, system message {ep.chat_form})")
            if next_model and not params.endpoint:  # the next model's weights, while this one answers
                ahead = prefetch_task.submit(next_model, params.profile, run_dir, run_id, run.attempt)
            if params.preflight:
                checked = preflight_task(server, mcfg, cfg, {n: (s, t) for n, (s, t, _) in plan.studies.items()},
                                         list(params.experiments), run.root / safe_name(model) / "preflight", here,
                                         plan, params.study_id, return_state=True)
                if not checked.is_completed():
                    return Failed(name=STOPPED, message=reason(checked))
            for job in plan.stage_jobs(cfg, run, model):
                summaries.append(stage_outcome(task(server, mcfg, job.study, job.trials, job.exp, job.out_dir,
                                                    cfg.experiments_file.utilization, return_state=True)))
            for x in plan.extraction_jobs(cfg, run, model):
                stage_outcome(extract_task.with_options(retries=params.task_retries)(
                    server, model, x.study, x.study_dir, here, x.retry, cfg.experiments_file.utilization,
                    judge=not separate, return_state=True))
    finally:
        record_lives(run, model, managed.lives)
        if ahead is not None:
            ahead.wait()
    run.mark_model_done(model, key, summaries)
    publish_stages(model, summaries, study_id=params.study_id)
    verdicts = model_verdicts(run.root / safe_name(model), params.study_objects(cfg), mass_limit(mcfg),
                              extraction_pending=separate and "exp1" in params.experiments)
    note = " (before the separate extraction model reads what the rules left)" if separate else ""
    return verdict_state(verdicts, data=summaries, note=note)


def _extractor(cfg: Config, params: RunParams, extraction: ExtractionConfig, run_id: str, run: RunFolder
               ) -> tuple[str, AbstractContextManager[ManagedServer | Endpoint]]:
    """The extraction model's name and how to reach it: its own server, or the external endpoint."""
    if extraction.endpoint is not None:
        block = extraction.endpoint.api_key_block
        key = Secret.load(block).get() if block else None  # type: ignore[union-attr]  # a sync load here
        return extraction.endpoint.model, nullcontext(external_endpoint(extraction, key))
    mcfg = weights_for(run, cfg.model(extraction.llm_model or "", where="extraction.llm_model"), params.profile,
                       run_id)
    factory = backend_factory(mcfg, params.profile, run_id=run_id, seed=None, log_dir=run.root / "logs")
    return mcfg.name, ManagedServer(factory)


@flow(name="grace-extraction", flow_run_name="extract-with-{extractor}", log_prints=True)
def extraction_run(extractor: str, params: RunParams, run_dir: str, run_id: str, models: list[str]
                   ) -> list[dict[str, Any]]:
    """The extraction model, brought up once after every study model (one server at a time): it reads what the
    rules left in every model's replies, then it is torn down."""
    cfg = load_config()
    run = RunFolder(Path(run_dir))
    extraction = extraction_settings(cfg, params.extract_llm)
    todo = [m for m in models if not run.extraction_done(m, extractor)]
    if not todo:
        print(f"every model's replies were already read by {extractor}")
        return []
    name, reach = _extractor(cfg, params, extraction, run_id, run)
    out: list[dict[str, Any]] = []
    with reach as source:
        for m in todo:
            for study in params.study_objects(cfg):
                out.append(stage_outcome(extract_task.with_options(retries=params.task_retries)(
                    source, m, study, run.study_dir(m, study.name), extraction,
                    cfg.experiment(study.name, "exp1").retry, cfg.experiments_file.utilization, return_state=True)))
            run.mark_extraction_done(m, name)
    return out


@flow(name="grace", log_prints=True, on_cancellation=[stop_run_servers], on_crashed=[stop_run_servers])
def grace(
    models: ModelsT = FIELDS["models"],
    studies: StudiesT = FIELDS["studies"],
    experiments: ExperimentsT = FIELDS["experiments"],
    sample: bool = FIELDS["sample"],
    profile: ProfileT = FIELDS["profile"],
    out: str = FIELDS["out"],
    study_id: NameT = FIELDS["study_id"],
    run_id: NameT = FIELDS["run_id"],
    limit: CountT = FIELDS["limit"],
    max_tokens: MaxTokensT = FIELDS["max_tokens"],
    concurrency: ConcurrencyT = FIELDS["concurrency"],
    endpoint: EndpointT = FIELDS["endpoint"],
    task_retries: RetriesT = FIELDS["task_retries"],
    overwrite: bool = FIELDS["overwrite"],
    extract_llm: SwitchT = FIELDS["extract_llm"],
    preflight: bool = FIELDS["preflight"],
    fail_on_unfit: bool = FIELDS["fail_on_unfit"],
) -> dict[str, Any] | State[Any]:
    """Run the study: every chosen model, one at a time, through every chosen study and experiment."""
    params = RunParams.model_validate(dict(locals()))  # the signature's fields, validated once, carried whole
    logger = get_run_logger()
    cfg = load_config()
    plan = plan_of(cfg, params, params.models)
    if study_id and run_id:
        raise UserInputError(f"pass study_id ({study_id!r}) or run_id ({run_id!r}), not both: both name the folder")
    rid = study_id or run_id or run_id_of(current_run.name or "local", current_run.id)
    run = study_folder(out, study_id) if study_id else RunFolder((Path(out) / rid).resolve())
    names = [m.name for m in plan.models]
    meta = {"models": names, **params.model_dump(mode="json", exclude={"models"}),
            "studies": params.study_names(cfg), "flow_run_id": str(current_run.id)}
    if study_id:
        check_same_plan(run, study_id, meta)
        if nothing_left(run, names, key_of(cfg, params)):
            logger.info("study %s: every model is done in %s: nothing left to do", study_id, run.root)
            return Completed(message=f"study {study_id}: {NOTHING_LEFT} ({run.root})",
                             data={"run_dir": str(run.root), "stages": []})
    run.begin(cfg, meta, overwrite=overwrite, resume=bool(study_id))  # a completed folder is not re-entered unasked
    logger.info("run %s: %d model(s) x %s x %s -> %s", rid, len(names), meta["studies"], params.experiments,
                run.root)
    summaries: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    finished: list[str] = []
    key = key_of(cfg, params)
    for i, m in enumerate(names):
        label_current_model(current_run.id, m)
        following = next((n for n in names[i + 1:] if not run.model_done(n, key)), None)
        state = model_run(m, params, str(run.root), rid, following, return_state=True)
        if (fetched := read_record(run, m)) is not None:
            run.note_weights(m, provenance(fetched))
        if state.is_completed():
            done = state.result()
            summaries += done if isinstance(done, list) else []
            finished.append(m)
        else:
            failures[m] = describe(m, state)
            logger.error("model %s did not finish: %s", m, failures[m])
    extraction = extraction_settings(cfg, params.extract_llm)
    if finished and extraction.separate and "exp1" in params.experiments:
        extractor = extraction.endpoint.model if extraction.endpoint else str(extraction.llm_model)
        extraction_state = extraction_run(extractor, params, str(run.root), rid, finished, return_state=True)
        if not extraction_state.is_completed():
            failures[f"extraction by {extractor}"] = f"failed: {reason(extraction_state)}"
    # the report covers what finished and what stopped at its preflight; the comparison needs a finished model
    ran = any((run.root / safe_name(m)).is_dir() for m in names)
    steps = ([report_task] if ran else []) + ([compare_task] if finished else [])
    for step in steps:
        step_state = step(run.root, study_id, return_state=True)
        if not step_state.is_completed():
            failures[step.name] = f"failed: {reason(step_state)}"
    if ran:  # the all-models tables for one's own analysis (RUN/analysis/)
        tables_state = tables_task(run.root, return_state=True)
        if not tables_state.is_completed():
            failures[tables_task.name] = f"failed: {reason(tables_state)}"
    verdicts = read_verdicts(run.root)
    verdict = verdict_message(verdicts)
    view_task(run.root, return_state=True)  # the trial viewer (trials.html); a failure to write it is logged
    publish_run(run.root, summaries, failures, verdict, study_id=study_id)
    run.end("failed" if failures else "completed", {"stages": summaries, "failures": failures,
                                                    "verdict": verdict})
    if failures:
        raise RuntimeError(f"{failure_message(failures)}. Verdict: {verdict}")
    result = {"run_dir": str(run.root.resolve()), "stages": summaries, "verdict": verdict}
    return verdict_state(verdicts, data=result, fail_on_unfit=fail_on_unfit)
