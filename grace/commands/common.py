"""Options and helpers shared by several verbs."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from grace.config import PROFILES, Config, load_config
from grace.errors import UserInputError
from grace.pipeline import backend_factory
from grace.progress import Progress as StageProgress
from grace.run import safe_name
from grace.serving import Endpoint
from grace.stage import StageResult
from grace.studies import Study, Trial
from grace.studies.registry import described, get_study


def add_config_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config-dir", type=Path, default=None, help="folder with models.yaml and experiments.yaml")


def add_trial_options(p: argparse.ArgumentParser) -> None:
    add_config_option(p)
    p.add_argument("--model", default="local", help="model name from config/models.yaml (default: local)")
    p.add_argument("--profile", default="local", choices=PROFILES,
                   help="hardware profile: local (a vLLM process here) or a cluster GPU (a Deployment there)")
    p.add_argument("--study", required=True, help=f"the study ({described()})")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--sample", action="store_true", help="the study's 10-row sample")
    g.add_argument("--input", type=Path, help="a CSV of your own with the study's columns")
    p.add_argument("--limit", type=int, default=None, help="only the first N trials")
    p.add_argument("--endpoint", default=None, help="use a running OpenAI-compatible server at this URL")
    p.add_argument("--out", type=Path, default=None, help="run folder (default: results/<verb>-<model>-<study>)")
    p.add_argument("--concurrency", type=int, default=None,
                   help="requests (exp1) or trials (exp2) in flight (default: experiments.yaml, else the server's "
                        "batch slots)")


def load_trials(cfg: Config, args: argparse.Namespace) -> tuple[Study, list[Trial], Path]:
    study = get_study(args.study)
    path = args.input or cfg.study_file(study.name, sample=args.sample)
    if args.limit is not None and args.limit < 1:
        raise UserInputError("--limit must be at least 1")
    return study, study.load(path, limit=args.limit), path


def default_out(verb: str, args: argparse.Namespace) -> Path:
    size = "sample" if args.sample else ("input" if args.input else "full")
    return Path("results") / safe_name(f"{verb}-{args.model}-{args.study}-{size}")


@contextmanager
def serving(cfg: Config, args: argparse.Namespace, run_id: str, seed: int | None = None) -> Iterator[Endpoint]:
    """An Endpoint: the given --endpoint, or a vLLM server started (and stopped) for this command where the
    profile says (a local process, a Deployment on the cluster), as the flow brings one up (backend_factory)."""
    model = cfg.model(args.model)
    factory = backend_factory(model, args.profile, run_id=run_id, endpoint=args.endpoint, seed=seed)
    if not args.endpoint:
        print(f"starting vLLM for {model.name} (profile {args.profile}) ...", flush=True)
    with factory() as ep:
        if not args.endpoint:
            print(f"server ready at {ep.base_url}", flush=True)
        yield ep


@contextmanager
def progress_bar(label: str, total: int) -> Iterator[StageProgress]:
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=False) as prog:
        task = prog.add_task(label, total=total)

        def advance(n: int, *, resumed: bool = False) -> None:
            prog.advance(task, n)

        yield advance


def print_notes(res: StageResult) -> None:
    """What a stage's closing line leaves out: its waits for the server, a torn checkpoint line, its tables."""
    if res.waits:
        print(f"note: waited {res.waited_s:.0f} s for the server ({len(res.waits)} time(s)): "
              + "; ".join(w["reason"] for w in res.waits))
    if res.load_report and res.load_report.truncated:
        print("note: the checkpoint's last line was truncated (a crash mid-write); that row was redone")
    for t in res.tables:
        print(f"table: {t}")


def config_from(args: argparse.Namespace) -> Config:
    return load_config(getattr(args, "config_dir", None))
