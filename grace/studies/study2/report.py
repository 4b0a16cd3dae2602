"""Study 2 in the data-quality report: Exp 1's chosen utterance against Exp 2's argmax, the utterance plots, and a
quantized variant's choices beside its full-precision model's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from grace.report.load import StageData
from grace.report.plugin import ReportPart, extracted_frame
from grace.studies.study2.plots import compare_models, utterances_by_goal_state


def choices_frame(data: StageData) -> pd.DataFrame:
    """trial_id, status, utterance (the extracted choice) and the design cell, per extracted record."""
    return extracted_frame(data, lambda f: {"utterance": f.get("utterance")}, ("utterance",))


class Study2Report(ReportPart):
    agreement = (("utterance", "utterance"),)

    def stage_plots(self, data: StageData, label: str, out_dir: Path, stem: str) -> list[Path]:
        drawn = utterances_by_goal_state(choices_frame(data), f"{label}: chosen utterance (study 2, Exp 1)",
                                         out_dir / f"{stem}_utterances.png")
        return [drawn] if drawn else []

    def compare_plot(self, per_model: list[tuple[str, StageData]], path: Path) -> Path | None:
        return compare_models([(label, choices_frame(d)) for label, d in per_model], path)

    def variant_rows(self, base: StageData, variant: StageData) -> dict[str, Any]:
        both = choices_frame(base).merge(choices_frame(variant), on="trial_id", suffixes=("_b", "_v"))
        same = both.dropna(subset=["utterance_b", "utterance_v"])
        return {"same utterance on the same trial": (
            round(float((same["utterance_b"] == same["utterance_v"]).mean()), 4) if len(same) else None,
            f"{len(same)} trials")}
