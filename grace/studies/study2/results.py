"""Study 2's comparison results, as written to compare.json (its `study2` list)."""

from __future__ import annotations

from grace.compare.schema import Interval, Out


class CellResult(Out):
    goal: str
    state: str
    n_trials: int
    model: dict[str, float]  # utterance -> proportion
    human: dict[str, float]
    js: float
    js_ci: Interval = None


class Study2Result(Out):
    model: str
    source: str  # exp2 (mean of per-trial option probabilities) or exp1 (extracted choices)
    prompt_variant: str = "main"  # the prompt wording compared, or "pooled" over every wording run
    status: str  # ok, or why it could not be compared: no-data, all-unparseable
    message: str = ""
    n_trials: int = 0  # trials that entered the comparison
    n_responses: int = 0  # exp1: responses read (replicates included); exp2: records with status ok
    unparseable: int = 0  # exp1: responses without a usable utterance (reported, not dropped silently)
    unparseable_share: float | None = None
    status_counts: dict[str, int] = {}
    cells_compared: int = 0
    cells_missing: list[str] = []
    js: float | None = None
    js_ci: Interval = None
    r: float | None = None
    r_ci: Interval = None
    r_note: str = ""
    cells: list[CellResult] = []
