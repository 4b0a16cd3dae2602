"""`grace score`: Experiment 2 (answer-option probabilities from log-probabilities) for one model and study."""

from __future__ import annotations

import argparse

from grace.commands.common import (
    add_trial_options,
    config_from,
    default_out,
    load_trials,
    print_notes,
    progress_bar,
    serving,
)
from grace.config import SCORING_PATHS
from grace.errors import ConfigError, UserInputError
from grace.run import RunFolder
from grace.scoring import ScoringError, run_exp2_inprocess, run_exp2_sync
from grace.scoring.engine import encode_trial
from grace.scoring.tokenize import load_tokenizer, local_chat_form
from grace.stage import StageResult


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="Experiment 2: option probabilities from log-probabilities (resumable)")
    add_trial_options(p)
    p.add_argument("--path", choices=SCORING_PATHS, default=None,
                   help="server: one next-token read per option-trie node (default from config); "
                        "per-option: one prompt_logprobs request per option (lm-eval style); "
                        "inprocess: transformers forward passes here, no server")
    p.add_argument("--batch-size", type=int, default=16, help="rows per forward pass (inprocess path)")
    p.set_defaults(func=score)


def score(args: argparse.Namespace) -> int:
    cfg = config_from(args)
    model = cfg.model(args.model)
    exp = cfg.experiment(args.study, "exp2")
    path = args.path or exp.scoring_path
    if path == "inprocess" and args.endpoint:
        raise UserInputError("--endpoint and --path inprocess exclude each other (inprocess loads the model here)")
    study, trials, src = load_trials(cfg, args)
    out_root = args.out or default_out("score" if path == "server" else f"score-{path}", args)
    run = RunFolder(out_root)
    out = run.study_dir(model.name, study.name)
    print(f"{len(trials)} trials from {src} -> {out} (path {path})")
    label = f"exp2 {model.name} {study.name} {path}"
    if path == "inprocess":
        tokenizer = load_tokenizer(model)
        try:  # a bad option set is a study mistake: say so before loading the model
            encode_trial(tokenizer, study, trials[0], model.system_prompt or local_chat_form(tokenizer))
        except ScoringError as e:
            raise ConfigError(f"study {study.name}, trial {trials[0]['trial_id']}: {e}") from None
        with progress_bar(label, len(trials)) as advance:
            res = run_exp2_inprocess(model.weights, study, trials, out, model=model.name, revision=model.revision,
                                     batch_size=args.batch_size, tokenizer=tokenizer, progress=advance,
                                     chat_form=model.system_prompt)
        unit = "forward passes"
    else:
        with serving(cfg, args, run.root.name) as ep, progress_bar(label, len(trials)) as advance:
            res = run_exp2_sync(ep, study, trials, exp, out, path=path, concurrency=args.concurrency,
                                progress=advance)
        unit = "requests"
    report(res, unit)
    return 1 if res.failed or res.other else 0


def report(res: StageResult, unit: str) -> None:
    done = res.total - res.skipped
    per = f", {res.sent / done:.2f} {unit}/trial" if done else ""
    print(f"done: {res.ok} ok, {res.failed} failed, {res.other or 'no other statuses'}; {done} scored in "
          f"{res.wall_s:.1f}s ({res.rps:.2f} trials/s; {res.sent} {unit}{per}); skipped {res.skipped} already done")
    print_notes(res)

