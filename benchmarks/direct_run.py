"""The study through grace.pipeline without Prefect: the orchestration benchmark's baseline.

Composes the building blocks of grace.pipeline (make_plan, backend_factory, the plan's stage and extraction
jobs, run_stage, run_extraction; the run folder's mark_model_done), then build_report and compare_run, as the
flow `grace` does (flows/grace_flow.py), in a fresh process like a flow run's, with the flow's parameters of the
same names: `python -m benchmarks.direct_run --out DIR --run-id ID [--endpoint URL] [--models toy] [--full]
[--max-tokens N] [--concurrency N] [--no-extract-llm]`. Prints one JSON line; `work_s` is the time after the imports.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402 - the clock starts before the imports, as a flow-run process's would
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from grace.compare.report import compare_run  # noqa: E402
from grace.config import load_config  # noqa: E402
from grace.pipeline import (  # noqa: E402
    backend_factory,
    extraction_settings,
    make_plan,
    own_server_extraction,
    plan_key,
    run_extraction,
    run_stage,
    stage_summary,
)
from grace.report.build import build_report  # noqa: E402
from grace.run import RunFolder  # noqa: E402
from grace.serving import ManagedServer  # noqa: E402
from grace.studies.registry import STUDIES, get_studies  # noqa: E402


def parser() -> argparse.ArgumentParser:
    """The flow's parameters of the same names (benchmarks/orchestration.py's Workload maps one to the other)."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--run-id", required=True)
    p.add_argument("--endpoint", default=None)
    p.add_argument("--models", nargs="+", default=["toy"])
    p.add_argument("--studies", nargs="+", default=None, help="default: every study of the config")
    p.add_argument("--experiments", nargs="+", default=["exp1", "exp2"])
    p.add_argument("--full", action="store_true", help="the full studies (the flow's sample=false)")
    p.add_argument("--max-tokens", type=int, default=None)
    p.add_argument("--no-extract-llm", action="store_true", help="rules-only extraction (extract_llm=false)")
    p.add_argument("--concurrency", type=int, default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    t_work = time.perf_counter()
    cfg = load_config()
    sample = not a.full
    studies = a.studies or list(cfg.experiments_file.studies)
    plan = make_plan(cfg, models=a.models, studies=get_studies(studies), experiments=a.experiments, sample=sample,
                     profile="local", max_tokens=a.max_tokens, concurrency=a.concurrency)
    run = RunFolder((a.out / a.run_id).resolve())
    run.begin(cfg, {"models": a.models, "studies": studies, "experiments": a.experiments, "sample": sample,
                    "max_tokens": a.max_tokens}, overwrite=True)
    key = plan_key(studies=studies, experiments=a.experiments, sample=sample, limit=None,
                   max_tokens=a.max_tokens, profile="local")
    here = own_server_extraction(extraction_settings(cfg, False if a.no_extract_llm else None))
    summaries = []
    for m in plan.models:  # as the flow's per-model subflow (flows/grace_flow.py model_run), without preflight
        factory = backend_factory(m, "local", run_id=a.run_id, endpoint=a.endpoint, seed=plan.server_seed(cfg),
                                  log_dir=run.root / "logs")
        stages = []
        with ManagedServer(factory) as server:
            for job in plan.stage_jobs(cfg, run, m.name):
                res = run_stage(server, m, job.study, job.trials, job.exp, job.out_dir)
                stages.append(stage_summary(m.name, res))
            for x in plan.extraction_jobs(cfg, run, m.name):
                run_extraction(server, x.study, x.study_dir, here, x.retry)
        run.mark_model_done(m.name, key, stages)
        summaries += stages
    if summaries:  # as the flow: the data-quality report and the human comparison
        build_report(run.root, STUDIES.values())
        compare_run(run.root, STUDIES.values())
    run.end("completed", {"stages": summaries, "failures": {}})
    done = time.perf_counter()
    print(json.dumps({"stages": len(summaries), "trials": sum(s["total"] for s in summaries),
                      "work_s": round(done - t_work, 3), "process_s": round(done - T0, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
