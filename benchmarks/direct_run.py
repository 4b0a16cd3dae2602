"""The sample study through grace.pipeline without Prefect: the orchestration benchmark's baseline.

Composes make_plan, backend_factory, ManagedServer, run_stage, extract_stage, mark_model_done, build_report
and compare_run as the flow `grace` does (flows/grace_flow.py), in a fresh process like a flow run's:
`python -m benchmarks.direct_run --out DIR --run-id ID [--endpoint URL] [--models toy]`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grace.compare.report import compare_run
from grace.config import load_config
from grace.extract.engine import extract_stage
from grace.pipeline import backend_factory, make_plan, mark_model_done, run_stage, stage_summary
from grace.report.build import build_report
from grace.run import RunFolder
from grace.serving import ManagedServer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--run-id", required=True)
    p.add_argument("--endpoint", default=None)
    p.add_argument("--models", nargs="+", default=["toy"])
    p.add_argument("--studies", nargs="+", default=["study1", "study2"])
    p.add_argument("--experiments", nargs="+", default=["exp1", "exp2"])
    a = p.parse_args(argv)
    cfg = load_config()
    plan = make_plan(cfg, models=a.models, studies=a.studies, experiments=a.experiments, sample=True,
                     profile="local")
    run = RunFolder((a.out / a.run_id).resolve())
    run.begin(cfg, {"models": a.models, "studies": a.studies, "experiments": a.experiments, "sample": True},
              overwrite=True)
    key = {"studies": a.studies, "experiments": a.experiments, "sample": True, "limit": None, "max_tokens": None,
           "profile": "local"}
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
                for name in plan.studies:
                    ep = server.ensure_alive() if extraction.llm_fallback else None
                    extract_stage(run.stage_dir(m.name, name), name, ep, concurrency=extraction.concurrency,
                                  max_tokens=extraction.max_tokens, retry=cfg.experiment(name, "exp1").retry)
        mark_model_done(run, m.name, key, stages)
        summaries += stages
    if summaries:  # as the flow: the data-quality report and the human comparison
        build_report(run.root)
        compare_run(run.root)
    run.end("completed", {"stages": summaries, "failures": {}})
    print(json.dumps({"stages": len(summaries), "trials": sum(s["total"] for s in summaries)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
