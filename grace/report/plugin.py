"""What a study adds to the data-quality report: agreement pairs, checks of its answers, plots, variant rows.

The report (build.py, checks.py) runs the generic checks on every study and asks the study's `ReportPart` for the
rest; a study without one (or with this class as is) gets the generic checks and the status plot only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:  # checks.py asks this module, so its types are for the annotations only
    from grace.records import ExtractedRecord
    from grace.report.checks import StudyChecks
    from grace.report.load import StudyData
    from grace.studies.base import Study


class ReportPart:
    """The defaults add nothing: no agreement pairs, no checks of the answers' values, no plots."""

    # (extracted field, Exp 2 question): Exp 1's stated answer and Exp 2's argmax, compared per trial
    agreement: tuple[tuple[str, str], ...] = ()

    def stated(self, fields: dict[str, Any], name: str) -> str | None:
        """The Exp 1 answer to compare under `name` (an agreement pair's field), as Exp 2 names its options."""
        v = fields.get(name)
        return None if v is None else str(v)

    def check_extracted(self, sc: StudyChecks, records: list[ExtractedRecord]) -> None:
        """Checks (and metrics) of the extracted values themselves, after the generic ones."""
        return None

    def study_plots(self, data: StudyData, label: str, out_dir: Path, stem: str) -> list[Path]:
        """Plots of one model's stage (files out_dir/<stem>_*.png); `label` names the model in titles."""
        return []

    def compare_plot(self, per_model: list[tuple[str, StudyData]], path: Path) -> Path | None:
        """One plot of every model's answers side by side (labelled), written to `path`; None: no such plot."""
        return None

    def variant_rows(self, base: StudyData, variant: StudyData) -> dict[str, Any]:
        """Measures of a full-precision model beside its quantized variant: name -> (base, variant[, note])."""
        return {}


def report_part(study: Study) -> ReportPart:
    """The study's report part; the default (generic checks only) for a study without one."""
    return study.report or ReportPart()


def extracted_frame(data: StudyData, columns: Callable[[dict[str, Any]], dict[str, Any]], names: tuple[str, ...]
                    ) -> pd.DataFrame:
    """trial_id, status and `columns(fields)` (a dict with the keys `names`) per extracted record, with the design
    cell columns joined."""
    rows = [{"trial_id": rec.trial_id, "status": rec.status, **columns(rec.fields)}
            for rec in data.extracted.values()]
    return with_conditions(pd.DataFrame(rows, columns=["trial_id", "status", *names]), data)


def with_conditions(df: pd.DataFrame, data: StudyData) -> pd.DataFrame:
    if data.conditions is not None and not df.empty:
        return df.merge(data.conditions, on="trial_id", how="left")
    return df
