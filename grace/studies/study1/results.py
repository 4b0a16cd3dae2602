"""Study 1's comparison results, as written to compare.json (its `study1` list)."""

from __future__ import annotations

from grace.compare.schema import Interval, Out


class ConditionPosterior(Out):
    access: int
    observe: int
    n_trials: int
    mean: dict[str, float]  # state "0".."3" -> mean bet out of 100
    ci: dict[str, Interval] = {}  # None with fewer than 2 trials ("n=1, no interval")


class FindingResult(Out):
    label: str
    observe: int
    access: int
    state_a: int
    state_b: int
    humans: bool  # humans' bets on state_a significantly exceeded those on state_b
    n_trials: int
    mean_a: float | None = None
    mean_b: float | None = None
    mean_diff: float | None = None
    min_effect: float = 0.0  # the smallest effect of interest (bet points): the test is of mean a - b > min_effect
    test: str = "paired t-test, one-sided (a - b > min_effect), scipy.stats.ttest_1samp of the differences"
    statistic: float | None = None
    p_value: float | None = None
    model_significant: bool = False
    reproduced: bool = False
    reproduced_boot_share: float | None = None  # share of bootstrap resamples in which it is reproduced (n >= 2)
    note: str = ""


class KnowledgeResult(Out):
    access: int
    n_trials: int
    model_mean: float | None  # mean bet (out of 100) that the speaker knows: P(yes) x 100, or yes-rate x 100
    model_ci: Interval = None
    human_mean: float | None = None
    human_sd: float | None = None
    difference: float | None = None


class Study1Result(Out):
    model: str
    source: str
    prompt_variant: str = "main"  # the prompt wording compared, or "pooled" over every wording run
    status: str
    message: str = ""
    n_trials: int = 0
    n_responses: int = 0
    unparseable: int = 0  # exp1: responses without usable posterior probabilities
    unparseable_share: float | None = None
    knowledge_unparseable: int = 0
    status_counts: dict[str, int] = {}
    conditions: list[ConditionPosterior] = []
    findings: list[FindingResult] = []
    reproduced: int = 0
    findings_total: int = 0
    reproduced_ci: Interval = None
    findings_no_interval: str = ""  # why reproduced_ci is withheld (a finding not testable)
    knowledge: list[KnowledgeResult] = []
    knowledge_order_matches: bool | None = None  # the model ranks access 1/2/3 as the humans do
