"""The study through grace.pipeline without Prefect: the orchestration benchmark's baseline.

Composes make_plan, backend_factory, ManagedServer, run_stage, extract_stage, mark_model_done, build_report
and compare_run as the flow `grace` does (flows/grace_flow.py), in a fresh process like a flow run's, with the
flow's parameters of the same names:
`python -m benchmarks.direct_run --out DIR --run-id ID [--endpoint URL] [--models toy] [--full]
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
from grace.extract.engine import extract_stage  # noqa: E402
from grace.pipeline import backend_factory, make_plan, mark_model_done, run_stage, stage_summary  # noqa: E402
from grace.report.build import build_report  # noqa: E402
from grace.run import RunFolder  # noqa: E402
from grace.serving import ManagedServer  # noqa: E402


def parser() -> argparse.ArgumentParser:
    """The flow's parameters of the same names (benchmarks/orchestration.py's Workload maps one to the other)."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--run-id", required=True)
    p.add_argument("--endpoint", default=None)
    p.add_argument("--models", nargs="+", default=["toy"])
    p.add_argument("--studies", nargs="+", default=["study1", "study2"])
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
    plan = make_plan(cfg, models=a.models, studies=a.studies, experiments=a.experiments, sample=sample,
                     profile="local", max_tokens=a.max_tokens, concurrency=a.concurrency)
    run = RunFolder((a.out / a.run_id).resolve())
    run.begin(cfg, {"models": a.models, "studies": a.studies, "experiments": a.experiments, "sample": sample,
                    "max_tokens": a.max_tokens}, overwrite=True)
    key = {"studies": a.studies, "experiments": a.experiments, "sample": sample, "limit": None,
           "max_tokens": a.max_tokens, "profile": "local"}
    summaries = []
    for m in plan.models:
        seed = cfg.experiment(a.studies[0], a.experiments[0]).sampling.seed
        factory = backend_factory(m, "local", run_id=a.run_id, endpoint=a.endpoint, seed=seed,
                                  log_dir=run.root / "logs")
        stages = []
        with ManagedServer(factory) as server:
            for exp_name in a.experiments:
                for name, (study, trials, _path) in plan.studies.items():
                    exp = plan.experiment(cfg, name, exp_name)
                    res = run_stage(server, m, study, trials, exp, run.stage_dir(m.name, name))
                    stages.append(stage_summary(m.name, res))
            if "exp1" in a.experiments:  # as the flow: extraction per study on the model's own server
                extraction = cfg.experiments_file.extraction
                llm = extraction.llm_fallback and not a.no_extract_llm
                for name in plan.studies:
                    ep = server.ensure_alive() if llm else None
                    extract_stage(run.stage_dir(m.name, name), name, ep, concurrency=extraction.concurrency,
                                  max_tokens=extraction.max_tokens, retry=cfg.experiment(name, "exp1").retry)
        mark_model_done(run, m.name, key, stages)
        summaries += stages
    if summaries:  # as the flow: the data-quality report and the human comparison
        build_report(run.root)
        compare_run(run.root)
    run.end("completed", {"stages": summaries, "failures": {}})
    done = time.perf_counter()
    print(json.dumps({"stages": len(summaries), "trials": sum(s["total"] for s in summaries),
                      "work_s": round(done - t_work, 3), "process_s": round(done - T0, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
