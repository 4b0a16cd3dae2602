"""Data-quality checks per model x study x experiment, and the fit / not-fit verdict with its reasons.

A check is `fatal` when failing it makes the model's data unfit for analysis (rows lost or duplicated, invalid
probabilities, too many failed or unreadable answers); other checks are reported for information.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from grace.records import Exp2Record, ServerWait
from grace.report.load import StudyData
from grace.report.plugin import ReportPart, report_part
from grace.server_waits import summarize_waits

MAX_ERROR_RATE = 0.01  # Exp 1 / Exp 2 requests that failed for good
MAX_TRUNCATION_RATE = 0.20  # Exp 1 replies cut by max_tokens
MIN_OK_RATE = 0.80  # extracted answers with every field read (status ok)
# Exp 2: the median probability a question's options got before renormalising. Below it the scores are read
# where the model does not start an answer (a misplaced scoring position: a channel or role header comes first).
# Measured on SmolLM2-135M: 0.35-14% at the right position (a weak model says "Yes" or quotes first), under
# 0.001% one header too early; a random-weight model spreads its mass over the vocabulary (its config sets 0).
MIN_OPTION_MASS = 1e-3
PROB_TOL = 1e-4


@dataclass
class Check:
    experiment: str
    name: str
    passed: bool
    detail: str
    fatal: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StudyChecks:
    model: str
    study: str
    checks: list[Check] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def fit(self) -> bool:
        return all(c.passed for c in self.checks if c.fatal)

    @property
    def reasons(self) -> list[str]:
        return [f"{c.experiment}: {c.detail}" for c in self.checks if c.fatal and not c.passed]

    def add(self, experiment: str, name: str, passed: bool, detail: str, fatal: bool = True) -> None:
        self.checks.append(Check(experiment, name, bool(passed), detail, fatal))


def _rates(counter: Counter, total: int) -> dict[str, float]:
    return {k: round(v / total, 4) for k, v in sorted(counter.items())} if total else {}


def probs_valid(probs: dict[str, float]) -> bool:
    """Values in [0, 1] (within PROB_TOL) summing to 1."""
    vals = list(probs.values())
    return (bool(vals) and all(isinstance(v, int | float) and not math.isnan(v) and -PROB_TOL <= v <= 1 + PROB_TOL
                                for v in vals) and abs(sum(vals) - 1) <= PROB_TOL * max(1, len(vals)))


def _rows_and_dupes(sc: StudyChecks, exp: str, data: StudyData, expected: set[str]) -> None:
    keys = set(data.records[exp])
    missing = expected - keys
    extra = keys - expected
    sc.add(exp, "row count", not missing and not extra,
           f"{len(keys)} rows, expected {len(expected)}" + (f"; {len(missing)} missing" if missing else "")
           + (f"; {len(extra)} unexpected" if extra else ""))
    dupes = [k for k, n in data.done_lines.get(exp, {}).items() if n > 1]
    sc.add(exp, "duplicate keys", not dupes, f"{len(dupes)} keys with more than one completed line"
           + (f" (e.g. {dupes[0]})" if dupes else ""))
    rep = data.reports.get(exp)
    if rep is not None:  # any other unreadable line stopped the reading with its line number (grace.checkpoint)
        sc.add(exp, "readable lines", True, "0 lines that are not valid records"
               + ("; a torn last line (left out)" if rep.truncated else ""), fatal=False)


def check_exp1(sc: StudyChecks, data: StudyData, expected_keys: set[str]) -> None:
    recs = list(data.exp1.values())
    n = len(recs)
    _rows_and_dupes(sc, "exp1", data, expected_keys)
    status = Counter(r.status for r in recs)
    err = status.get("error", 0) / n if n else 0.0
    sc.add("exp1", "failed requests", err <= MAX_ERROR_RATE, f"{err:.1%} of requests failed (limit "
           f"{MAX_ERROR_RATE:.0%})")
    finish = Counter(r.finish_reason or "none" for r in recs)
    trunc = finish.get("length", 0) / n if n else 0.0
    sc.add("exp1", "truncation", trunc <= MAX_TRUNCATION_RATE,
           f"{trunc:.1%} of replies cut by max_tokens (limit {MAX_TRUNCATION_RATE:.0%})")
    lengths = [len(r.response or "") for r in recs]
    tokens = [r.completion_tokens for r in recs if r.completion_tokens is not None]
    missing = {"response": sum(not (r.response or "").strip() for r in recs),
               "finish_reason": sum(r.finish_reason is None for r in recs),
               "completion_tokens": sum(r.completion_tokens is None for r in recs)}
    sc.metrics["exp1"] = {
        "rows": n, "status": dict(status), "status_rates": _rates(status, n), "finish_reason": dict(finish),
        "truncation_rate": round(trunc, 4), "missing": missing,
        "response_chars": {"mean": round(statistics.fmean(lengths), 1) if lengths else None,
                           "median": statistics.median(lengths) if lengths else None,
                           "max": max(lengths) if lengths else None},
        "completion_tokens_mean": round(statistics.fmean(tokens), 1) if tokens else None,
        "latency_s_mean": round(statistics.fmean([r.latency_s for r in recs if r.latency_s is not None] or [0]), 3),
    }


def check_exp2(sc: StudyChecks, data: StudyData, expected_trials: set[str],
               min_option_mass: float = MIN_OPTION_MASS) -> None:
    recs = list(data.exp2.values())
    n = len(recs)
    _rows_and_dupes(sc, "exp2", data, expected_trials)
    status = Counter(r.status for r in recs)
    err = status.get("error", 0) / n if n else 0.0
    sc.add("exp2", "failed requests", err <= MAX_ERROR_RATE, f"{err:.1%} of trials failed (limit "
           f"{MAX_ERROR_RATE:.0%})")
    bad, bad_argmax = 0, 0
    questions: Counter[str] = Counter()
    for r in recs:
        for q, scores in r.questions.items():
            questions[q] += 1
            if not probs_valid(scores.probs):
                bad += 1
            elif scores.argmax != max(scores.probs, key=scores.probs.__getitem__):
                bad_argmax += 1
    sc.add("exp2", "probabilities", bad == 0, f"{bad} question scores with probabilities outside [0,1] or not "
           f"summing to 1")
    sc.add("exp2", "argmax", bad_argmax == 0, f"{bad_argmax} argmax values that are not the most probable option")
    mass = option_mass_by_question(recs)
    low = {q: m for q, m in mass.items() if m is not None and m < min_option_mass}
    if mass:
        sc.add("exp2", "option mass", not low,
               ("questions whose options got little probability (median option mass below "
                f"{min_option_mass:g}): " + ", ".join(f"{q} {m:.3g}" for q, m in low.items())) if low else
               f"median option mass {', '.join(f'{q} {m:.3g}' for q, m in mass.items() if m is not None)} "
               f"(limit {min_option_mass:g})")
    sc.metrics["exp2"] = {"rows": n, "status": dict(status), "status_rates": _rates(status, n),
                          "questions": dict(questions), "option_mass_median": mass}


def option_mass_by_question(recs: list[Exp2Record]) -> dict[str, float | None]:
    """The median option mass of each question over the scored trials (None where no record has it)."""
    values: dict[str, list[float]] = {}
    for r in recs:
        for q, scores in r.questions.items():
            values.setdefault(q, [])
            if scores.option_mass is not None:
                values[q].append(scores.option_mass)
    return {q: (round(statistics.median(v), 6) if v else None) for q, v in values.items()}


def check_extracted(sc: StudyChecks, data: StudyData, exp1_keys: set[str], part: ReportPart) -> None:
    recs = list(data.extracted.values())
    n = len(recs)
    _rows_and_dupes(sc, "extracted", data, exp1_keys)
    status = Counter(r.status for r in recs)
    method = Counter(r.method for r in recs)
    ok = status.get("ok", 0) / n if n else 0.0
    sc.add("extracted", "parse rate", ok >= MIN_OK_RATE,
           f"{ok:.1%} of replies fully read (status ok; limit {MIN_OK_RATE:.0%})")
    field_names = sorted({k for r in recs for k in r.fields if k not in ("notes", "reasoning")})
    missing = {f: sum(r.fields.get(f) is None for r in recs) for f in field_names}
    sc.metrics["extracted"] = {"rows": n, "status": dict(status), "status_rates": _rates(status, n),
                               "method": dict(method), "method_rates": _rates(method, n), "missing": missing}
    part.check_extracted(sc, recs)


def agreement(sc: StudyChecks, data: StudyData, part: ReportPart) -> None:
    """Exp 1's stated answer vs Exp 2's argmax, over the trials where both exist (replicate 0... all)."""
    ex, e2 = data.extracted, data.exp2
    out = {}
    for fname, question in part.agreement:
        both = agree = 0
        for rec in ex.values():
            stated = part.stated(rec.fields, fname)
            r2 = e2.get(rec.trial_id)
            if stated is None or r2 is None or question not in r2.questions:
                continue
            both += 1
            agree += stated == r2.questions[question].argmax
        out[f"{fname}~{question}"] = {"pairs": both, "agree": agree,
                                      "rate": round(agree / both, 4) if both else None}
    sc.metrics["agreement"] = out
    if out:
        sc.add("agreement", "exp1 vs exp2", True, "; ".join(
            f"{k}: {v['rate']:.0%} of {v['pairs']}" if v["rate"] is not None else f"{k}: no pairs"
            for k, v in out.items()), fatal=False)


def run_checks(data: StudyData, expected_trials: set[str], min_option_mass: float = MIN_OPTION_MASS) -> StudyChecks:
    """All checks of one model x study; `expected_trials` is the study's trial set over the whole run."""
    sc = StudyChecks(data.model, data.study.name)
    part = report_part(data.study)
    exp1_keys: set[str] = set()
    if "exp1" in data.records:
        reps = {r.replicate for r in data.exp1.values()}
        exp1_keys = {f"{t}#{r}" for t in expected_trials for r in (reps or {0})}
        check_exp1(sc, data, exp1_keys)
    else:
        sc.add("exp1", "present", False, "no exp1.jsonl", fatal=False)
    if "exp2" in data.records:
        check_exp2(sc, data, expected_trials, min_option_mass)
    if "extracted" in data.records:
        check_extracted(sc, data, set(data.records.get("exp1", {})) or exp1_keys, part)
    elif "exp1" in data.records:
        sc.add("extracted", "present", False, "no extracted.jsonl: run the extraction stage", fatal=True)
    if "extracted" in data.records and "exp2" in data.records:
        agreement(sc, data, part)
    server_waits(sc, data)
    return sc


def server_waits(sc: StudyChecks, data: StudyData) -> None:
    """How long each stage waited for its server and why (grace.server_waits): information, not a verdict."""
    by_exp: dict[str, list[ServerWait]] = {}
    for w in data.server_waits:
        by_exp.setdefault(w.experiment, []).append(w)
    if by_exp:
        sc.metrics["server"] = {exp: summarize_waits(ws) for exp, ws in sorted(by_exp.items())}
