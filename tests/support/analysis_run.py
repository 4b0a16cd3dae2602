"""A run folder made without a server, for the analysis tables and grace.R: replies written as a model would (the
study's answer format, off-format prose, refusals, newlines, quotes, commas, an "NA"), read by the real extraction
stage; Exp 2 scores from seeded log-probabilities through the real scoring arithmetic; the stage tables written by
the real stages' `rows` (grace.stage.tabulate), so the folder is laid out exactly as a served run leaves it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from grace.checkpoint import Checkpoint
from grace.config import Config
from grace.extract import extract_stage
from grace.query import Exp1Stage
from grace.records import Exp1Record, Exp2Record
from grace.scoring.engine import _Exp2
from grace.scoring.logprobs import score_options
from grace.stage import StageResult, tabulate
from grace.studies import Study, Trial
from grace.studies.study2 import UTTERANCES

AWKWARD = ['He said "maybe", so: ', "Line one,\r\nline two\n", "  leading and trailing spaces  ", "NA", "",
           "Ünïcödé — ☺, \"quoted\" and, commas"]


def study1_reply(rng: np.random.Generator, i: int) -> str:
    kind = i % 7
    if kind == 5:
        return "I'd rather not guess about this one."
    if kind == 6:
        text = AWKWARD[i % len(AWKWARD)]
        return text if text == "NA" else text + "\nno idea"  # a bare "NA": text, not a missing value
    bets = rng.multinomial(100, rng.dirichlet([1, 1, 1, 1])) if kind != 4 else [25, 25, 25, 25]
    know = "yes" if rng.random() < 0.5 else "no"
    body = (f"Initial Answer: {rng.integers(0, 4)}\nProbabilities: 0: {bets[0]}%, 1: {bets[1]}%, 2: {bets[2]}%, "
            f"3: {bets[3]}%\nKnowledge: {know}")
    return f"{AWKWARD[i % len(AWKWARD)]}\n{body}" if kind == 3 else body


def study2_reply(rng: np.random.Generator, i: int) -> str:
    if i % 6 == 5:
        return AWKWARD[i % len(AWKWARD)] + "\nI cannot choose."
    u = UTTERANCES[int(rng.integers(0, len(UTTERANCES)))]
    reason = 'Because "honesty" matters,\nand kindness too.' if i % 4 == 1 else "It fits the scene."
    return f"{u}\n{reason}"


REPLIES = {"study1": study1_reply, "study2": study2_reply}


def write_stage(folder: Path, cfg: Config, study: Study, trials: list[Trial], model: str, seed: int,
                replicates: int = 2, failed_exp2: int = 1) -> None:
    """exp1.jsonl (+ tables), extracted.jsonl (the real rules) and exp2.jsonl (+ tables) of one model x study."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    exp = cfg.experiment(study.name, "exp1")
    exp = exp.model_copy(update={"sampling": exp.sampling.model_copy(update={"replications": replicates})})
    reply = REPLIES.get(study.name, study2_reply)
    with Checkpoint(folder / "exp1.jsonl", Exp1Record) as ckpt:
        i = 0
        for t in trials:
            for r in range(replicates):
                text = reply(rng, i)
                ckpt.append(Exp1Record(
                    trial_id=t["trial_id"], model=model, model_revision="random-seed-0", study=study.name,
                    prompt_version=study.prompt_version, replicate=r, messages=study.exp1_messages(t),
                    sampling={"temperature": 0.7, "max_tokens": 64}, response=text,
                    status="ok" if text.strip() else "empty", finish_reason="stop", prompt_tokens=100 + i,
                    completion_tokens=len(text.split()), latency_s=0.25 + i / 1000))
                i += 1
    tabulate(Exp1Stage(None, study, trials, exp), folder,  # type: ignore[arg-type]  # rows need no endpoint
             StageResult(study.name, "exp1", folder / "exp1.jsonl", total=len(trials) * replicates))
    extract_stage(folder, study)
    with Checkpoint(folder / "exp2.jsonl", Exp2Record) as ckpt:
        for k, t in enumerate(trials):
            base = dict(trial_id=t["trial_id"], model=model, model_revision="random-seed-0", study=study.name,
                        prompt_version=study.exp2_prompt_version)
            if k < failed_exp2:
                ckpt.append(Exp2Record(**base, status="context_overflow", error="prompt too long"))
                continue
            questions = {}
            for q in study.exp2_questions(t):
                ids = {o: [100 + j] if len(o) < 4 else [100 + j, 7] for j, o in enumerate(q.options)}
                lps = {o: [float(-rng.gamma(2.0, 1.5)) for _ in ids[o]] for o in q.options}
                questions[q.name] = score_options("...", q.options, ids, lps)
            ckpt.append(Exp2Record(**base, questions=questions, requests=1))
    tabulate(_Exp2(study, trials), folder, StageResult(study.name, "exp2", folder / "exp2.jsonl", total=len(trials)))


def make_run(run_dir: Path, cfg: Config, inputs: dict[Study, list[Trial]], models: tuple[str, ...],
             replicates: int = 2) -> Path:
    for m, model in enumerate(models):
        for s, (study, trials) in enumerate(inputs.items()):
            write_stage(run_dir / model / study.name, cfg, study, trials, model, seed=100 * m + s,
                        replicates=replicates)
    return run_dir



def made_run(run_dir: Path, cfg: Config, inputs: dict[Study, list[Trial]], models: tuple[str, ...]) -> Path:
    """make_run, then what the end of a run does: the report, the comparison (no plots), the analysis tables."""
    from grace.analysis import write_analysis
    from grace.compare.report import compare_run
    from grace.report.build import build_report

    make_run(run_dir, cfg, inputs, models)
    studies = list(inputs)
    build_report(run_dir, studies)
    compare_run(run_dir, studies, cfg=cfg, plots=False)
    write_analysis(run_dir, studies)
    return run_dir
