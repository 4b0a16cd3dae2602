"""Study 1 in the data-quality report: Exp 1's stated answers against Exp 2's argmax, the bets' validity, the
posterior plots, and a quantized variant's bets beside its full-precision model's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from grace.records import ExtractedRecord
from grace.report.checks import StudyChecks, probs_valid
from grace.report.load import StudyData
from grace.report.plugin import ReportPart, extracted_frame, with_conditions
from grace.studies.study1.study import STATES

P_COLUMNS = tuple(f"p{s}" for s in STATES)


def _bets(fields: dict[str, Any]) -> dict[str, Any]:
    probs = fields.get("probabilities") or {}
    return {f"p{s}": probs.get(s, np.nan) for s in STATES}


def bets_frame(data: StudyData) -> pd.DataFrame:
    """trial_id, status, p0..p3 (the extracted posterior bets) and the design cell, per extracted record."""
    return extracted_frame(data, _bets, P_COLUMNS)


def exp2_frame(data: StudyData, question: str) -> pd.DataFrame | None:
    """trial_id, p0..p3 (Exp 2's option probabilities of `question`) and the design cell, per scored trial."""
    recs = data.exp2
    if not recs:
        return None
    rows = []
    for rec in recs.values():
        q = rec.questions.get(question)
        if q is not None:
            rows.append({"trial_id": rec.trial_id, **{f"p{s}": q.probs.get(s, np.nan) for s in STATES}})
    return with_conditions(pd.DataFrame(rows), data) if rows else None


class Study1Report(ReportPart):
    agreement = (("initial_answer", "prior"), ("posterior_argmax", "posterior"), ("knowledge", "knowledge"))

    def stated(self, fields: dict[str, Any], name: str) -> str | None:
        """`posterior_argmax`: the state with the highest bet (none on a tie)."""
        if name != "posterior_argmax":
            return super().stated(fields, name)
        probs = fields.get("probabilities")
        if not probs:
            return None
        top = max(probs.values())
        winners = [k for k, v in probs.items() if abs(v - top) < 1e-12]
        return winners[0] if len(winners) == 1 else None  # a tie has no single stated answer

    def check_extracted(self, sc: StudyChecks, records: list[ExtractedRecord]) -> None:
        bad = sum(1 for r in records if r.fields.get("probabilities") and not probs_valid(r.fields["probabilities"]))
        sc.add("extracted", "probabilities", bad == 0, f"{bad} parsed probability sets outside [0,1] or not summing "
               "to 1")
        sc.metrics["extracted"]["probabilities_not_summing_to_100"] = sum(
            1 for r in records if r.fields.get("sums_to_100") is False)

    def study_plots(self, data: StudyData, label: str, out_dir: Path, stem: str) -> list[Path]:
        # plotting is imported when drawn, not when the study is looked up (tests/test_imports.py)
        from grace.studies.study1.plots import posterior_by_condition

        drawn = posterior_by_condition(bets_frame(data), exp2_frame(data, "posterior"),
                                       f"{label}: posterior bets (study 1)", out_dir / f"{stem}_posterior.png")
        return [drawn] if drawn else []

    def compare_plot(self, per_model: list[tuple[str, StudyData]], path: Path) -> Path | None:
        # plotting is imported when drawn, not when the study is looked up (tests/test_imports.py)
        from grace.studies.study1.plots import compare_models

        return compare_models([(label, bets_frame(d)) for label, d in per_model], path)

    def variant_rows(self, base: StudyData, variant: StudyData) -> dict[str, Any]:
        eb, ev = bets_frame(base), bets_frame(variant)
        ep = [float((f[list(P_COLUMNS)].dropna().to_numpy() @ np.arange(4)).mean()) if f[["p0"]].dropna().size
              else None for f in (eb, ev)]
        both = eb.merge(ev, on="trial_id", suffixes=("_b", "_v"))
        pb = both[[f"{c}_b" for c in P_COLUMNS]].to_numpy()
        pv = both[[f"{c}_v" for c in P_COLUMNS]].to_numpy()
        ok = ~(np.isnan(pb).any(1) | np.isnan(pv).any(1))
        return {
            "mean expected posterior": tuple(round(v, 3) if v is not None else None for v in ep),
            "mean |posterior difference| per trial (TV)": (
                round(float(0.5 * np.abs(pb[ok] - pv[ok]).sum(1).mean()), 4) if ok.any() else None,
                f"{ok.sum()} trials"),
        }
