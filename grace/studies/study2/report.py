"""Study 2 in the data-quality report: Exp 1's chosen utterance against Exp 2's argmax, the utterance plots, and a
quantized variant's choices beside its full-precision model's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from grace.report.load import StudyData
from grace.report.plugin import ReportPart, extracted_frame


def choices_frame(data: StudyData) -> pd.DataFrame:
    """trial_id, status, utterance (the extracted choice) and the design cell, per extracted record."""
    return extracted_frame(data, lambda f: {"utterance": f.get("utterance")}, ("utterance",))


class Study2Report(ReportPart):
    agreement = (("utterance", "utterance"),)

    def study_plots(self, data: StudyData, label: str, out_dir: Path, stem: str) -> list[Path]:
        # plotting is imported when drawn, not when the study is looked up (tests/test_imports.py)
        from grace.studies.study2.plots import utterances_by_goal_state

        drawn = utterances_by_goal_state(choices_frame(data), f"{label}: chosen utterance (study 2, Exp 1)",
                                         out_dir / f"{stem}_utterances.png")
        return [drawn] if drawn else []

    def compare_plot(self, per_model: list[tuple[str, StudyData]], path: Path) -> Path | None:
        # plotting is imported when drawn, not when the study is looked up (tests/test_imports.py)
        from grace.studies.study2.plots import compare_models

        return compare_models([(label, choices_frame(d)) for label, d in per_model], path)

    def variant_rows(self, base: StudyData, variant: StudyData) -> dict[str, Any]:
        both = choices_frame(base).merge(choices_frame(variant), on="trial_id", suffixes=("_b", "_v"))
        same = both.dropna(subset=["utterance_b", "utterance_v"])
        return {"same utterance on the same trial": (
            round(float((same["utterance_b"] == same["utterance_v"]).mean()), 4) if len(same) else None,
            f"{len(same)} trials")}
