"""Study 2's comparison results, as written to compare.json (its `study2` list)."""

from __future__ import annotations

from grace.compare.schema import Interval, Out


class FindingResult(Out):
    """One published finding tested on a model (grace/studies/study2/findings.py)."""

    key: str
    label: str
    test: str  # what was tested, and how
    n_trials: int  # trials in the finding's cells
    model_first: float | None = None  # the model's share under the first goal (or of the literal utterance)
    model_second: float | None = None  # ... under the second goal (or of the most chosen other utterance)
    effect: float | None = None  # first - second
    effect_ci: Interval = None
    min_effect: float = 0.0  # the smallest effect of interest: the test is of effect > min_effect
    statistic: float | None = None
    p_value: float | None = None
    significant: bool = False
    testable: bool = False
    reproduced: bool = False
    human_first: float | None = None
    human_second: float | None = None
    human_effect: float | None = None
    human_ci: Interval = None
    human_source: str = ""
    note: str = ""


class CellResult(Out):
    goal: str
    state: str
    n_trials: int
    model: dict[str, float]  # utterance -> proportion
    human: dict[str, float]
    js: float
    js_ci: Interval = None  # None with fewer than 2 trials: "n=1, no interval"


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
    no_interval: str = ""  # why js_ci / r_ci are withheld (a cell with fewer than 2 trials)
    js_vs_ceiling: float | None = None  # js / the humans' split-half JS
    findings: list[FindingResult] = []
    reproduced: int = 0
    findings_total: int = 0
    reproduced_ci: Interval = None
    findings_no_interval: str = ""  # why reproduced_ci is withheld
    cells: list[CellResult] = []
