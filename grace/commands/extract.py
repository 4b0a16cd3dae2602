"""`grace extract`: structured answers from free-text replies (rules, then optionally an LLM).

Contract: `grace extract --study S --input FILE --output FILE [--llm-endpoint URL --llm-model NAME]`. The input
is CSV or JSONL with `trial_id` and `response` columns (optional: `finish_reason`, `replicate`, `model`,
`model_revision`; any other column is carried through under the record's `inputs`); the output is JSONL of
the records the extraction stage writes (grace.records.ExtractedRecord), one per input row in the same order.
With `--study-dir DIR` instead (older name `--stage`), a run folder's study folder's `<model>/<study>/exp1.jsonl`
becomes `extracted.jsonl` there.
`grace extract-eval FILE` scores extraction against annotated real answers (grace/extract/evaluate.py).
"""

from __future__ import annotations

import argparse
import json
import math
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from grace.checkpoint import LoadReport, atomic_path, read_objects
from grace.commands.common import config_from
from grace.config import ExtractionConfig, ExtractionEndpoint
from grace.errors import DataError, UserInputError
from grace.extract import Reply, extract_rows, extract_stage
from grace.extract.engine import Extracted, extracted_record
from grace.extract.evaluate import annotated_study, evaluate, report_lines
from grace.extract.extractor import external_endpoint
from grace.records import ExtractedRecord, now
from grace.serving import Endpoint, ExternalServer, LocalVLLMServer
from grace.studies.registry import STUDIES, described, get_study

OWN = ("trial_id", "response", "finish_reason", "replicate", "model", "model_revision")  # read, not carried


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("extract", help="structured answers from Exp 1 replies (rules, then an LLM)")
    p.add_argument("--study", required=True, help=f"the study ({described()})")
    p.add_argument("--input", type=Path, help="CSV or JSONL with trial_id and response columns")
    p.add_argument("--output", type=Path, help="JSONL to write: one record per input row, same order")
    p.add_argument("--study-dir", "--stage", dest="study_dir", type=Path, metavar="DIR",
                   help="instead of --input/--output: a run folder's study folder, <model>/<study>/ (--stage: its "
                        "older name)")
    p.add_argument("--llm-endpoint", default=None, help="OpenAI-compatible vLLM server for the LLM stage")
    p.add_argument("--llm-model", default=None, help="served model name at --llm-endpoint")
    p.add_argument("--llm-api-key-env", default=None, metavar="VAR",
                   help="a hosted endpoint: the environment variable holding its API key (sent as a bearer token; "
                        "no vLLM readiness checks)")
    p.add_argument("--config-dir", type=Path, default=None, help="folder with models.yaml and experiments.yaml")
    p.set_defaults(func=extract)

    e = sub.add_parser("extract-eval", help="accuracy of extraction on annotated real answers")
    e.add_argument("file", type=Path, metavar="FILE",
                   help="JSONL of annotated answers: trial_id, response, gold (see docs/extraction.md)")
    e.add_argument("--study", default=None,
                   help="the study of the answers (default: the one study with annotated answers, study 1)")
    g = e.add_mutually_exclusive_group()
    g.add_argument("--model", default=None, help="also score rules + LLM, serving this config/models.yaml model")
    g.add_argument("--llm-endpoint", default=None, help="also score rules + LLM with this running server")
    e.add_argument("--llm-model", default=None, help="served model name at --llm-endpoint")
    e.add_argument("--profile", default="local", help="hardware profile for --model (default: local)")
    e.add_argument("--json", type=Path, default=None, help="also write the figures and every mismatch here")
    e.add_argument("--config-dir", type=Path, default=None, help="folder with models.yaml and experiments.yaml")
    e.set_defaults(func=extract_eval)


def read_input(path: Path) -> list[dict[str, Any]]:
    """Rows of a CSV or JSONL file (by suffix; .jsonl/.ndjson/.json lines), checked for trial_id and response."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        report = LoadReport()
        rows = [row for _, row in read_objects(path, report)]
        if report.truncated:
            print(f"note: {path}: the last line is torn (no newline, not JSON): left out")
    else:
        try:
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
            raise DataError(f"{path}: not a readable CSV ({str(e).splitlines()[0]})") from None
        rows = [{str(k): v for k, v in r.items()} for r in df.to_dict(orient="records")]
    if not rows:
        raise DataError(f"{path}: no rows")
    for col in ("trial_id", "response"):
        for i, row in enumerate(rows, start=1):
            if col not in row:
                raise DataError(f"{path}: row {i}: no {col!r} column")
    for i, row in enumerate(rows, start=1):
        if row["trial_id"] is None or not str(row["trial_id"]).strip():
            raise DataError(f"{path}: row {i}: empty trial_id")
        r = row["response"]
        if r is not None and not isinstance(r, str):
            if isinstance(r, float) and math.isnan(r):
                row["response"] = None
            else:
                raise DataError(f"{path}: row {i}, column 'response': not text ({type(r).__name__})")
    return rows


def _replicate(path: Path, i: int, value: Any) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise DataError(f"{path}: row {i}, column 'replicate': {value!r} is not a whole number")


def _text(row: dict[str, Any], name: str) -> str:
    value = row.get(name)
    return str(value) if value not in (None, "") else "unknown"


def output_record(path: Path, i: int, row: dict[str, Any], res: Extracted, study: str, endpoint: Endpoint | None,
                  started: datetime, finished: datetime) -> ExtractedRecord:
    """Input row i and its result as the extraction stage's record; the row's other columns under `inputs`."""
    return extracted_record(res, trial_id=str(row["trial_id"]), replicate=_replicate(path, i, row.get("replicate")),
                            model=_text(row, "model"), model_revision=_text(row, "model_revision"), study=study,
                            endpoint=endpoint, started=started, finished=finished,
                            inputs={k: v for k, v in row.items() if k not in OWN})


def _endpoint(args: argparse.Namespace) -> AbstractContextManager[Endpoint | None]:
    """The LLM for the extraction's second stage, as a context that serves it; None: rules only."""
    if bool(args.llm_endpoint) != bool(args.llm_model):
        raise UserInputError("--llm-endpoint and --llm-model go together")
    if not args.llm_endpoint:
        return nullcontext(None)
    var = getattr(args, "llm_api_key_env", None)
    if var:  # a hosted model: its API key from the environment, no vLLM-specific probes
        settings = ExtractionConfig(endpoint=ExtractionEndpoint(url=args.llm_endpoint, model=args.llm_model,
                                                                api_key_env=var))
        return nullcontext(external_endpoint(settings))
    return ExternalServer(args.llm_endpoint, args.llm_model)


def extract(args: argparse.Namespace) -> int:
    study = get_study(args.study)
    if study.extraction is None:
        raise UserInputError(f"no extraction schema for study {study.name!r}")
    cfg = config_from(args)
    ex = cfg.experiments_file.extraction
    server = _endpoint(args)
    if args.study_dir:
        if args.input or args.output:
            raise UserInputError("use either --study-dir or --input/--output")
        if not (args.study_dir / "exp1.jsonl").is_file():
            raise DataError(f"{args.study_dir}: no exp1.jsonl")
        with server as ep:
            summary = extract_stage(args.study_dir, study, ep, concurrency=ex.concurrency, max_tokens=ex.max_tokens)
        print(summary.line())
        for p in summary.outputs:
            print(f"wrote {p}")
        return 0
    if not args.input or not args.output:
        raise UserInputError("--input and --output are required (or --study-dir DIR)")
    rows = read_input(args.input)
    replies = [Reply(r["response"], r.get("finish_reason") if isinstance(r.get("finish_reason"), str) else None)
               for r in rows]
    for i, row in enumerate(rows, start=1):
        _replicate(args.input, i, row.get("replicate"))  # refused before any LLM request
    with server as ep:
        started = now()
        results, summary = extract_rows(study.extraction, replies, ep, concurrency=ex.concurrency,
                                        max_tokens=ex.max_tokens)
        finished = now()
        records = [output_record(args.input, i, row, res, study.name, ep, started, finished)
                   for i, (row, res) in enumerate(zip(rows, results, strict=True), start=1)]
    with atomic_path(args.output) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(rec.model_dump_json() + "\n" for rec in records)
    print(summary.line())
    print(f"wrote {args.output} ({len(rows)} records)")
    return 0


def extract_eval(args: argparse.Namespace) -> int:
    study = get_study(args.study) if args.study else annotated_study(STUDIES.values())
    cfg = config_from(args)
    ex = cfg.experiments_file.extraction
    server = _endpoint(args)
    if args.model:
        model = cfg.model(args.model)
        print(f"starting vLLM for {model.name} (profile {args.profile}) ...", flush=True)
        server = LocalVLLMServer(model, profile=args.profile, run_id="extract-eval")
    with server as ep:
        rep = evaluate(args.file, study, ep, concurrency=ex.concurrency, max_tokens=ex.max_tokens)
    print("\n".join(report_lines(rep)))
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(rep.to_json(), indent=2, default=str) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0
