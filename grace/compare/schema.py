"""Pydantic models of the comparison written to RUN_DIR/compare/compare.json."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

Interval = tuple[float, float] | None


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


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


class ConditionPosterior(Out):
    access: int
    observe: int
    n_trials: int
    mean: dict[str, float]  # state "0".."3" -> mean bet out of 100
    ci: dict[str, Interval] = {}


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
    test: str = "paired t-test, one-sided (a > b), scipy.stats.ttest_rel"
    statistic: float | None = None
    p_value: float | None = None
    model_significant: bool = False
    reproduced: bool = False
    reproduced_boot_share: float | None = None  # share of bootstrap resamples in which it is reproduced
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
    knowledge: list[KnowledgeResult] = []
    knowledge_order_matches: bool | None = None  # the model ranks access 1/2/3 as the humans do


class RankedRow(Out):
    rank: int
    model: str
    variant_of: str | None = None
    study: str
    source: str
    status: str
    js: float | None = None
    js_ci: Interval = None
    r: float | None = None
    r_ci: Interval = None
    findings: str = ""  # "k/8"
    findings_ci: Interval = None
    unparseable_share: float | None = None
    message: str = ""


class VariantPair(Out):
    model: str  # e.g. the AWQ build
    base: str  # the full-precision model it is a variant of
    study: str
    source: str
    model_js: float | None = None
    base_js: float | None = None
    model_findings: str = ""
    base_findings: str = ""


class CompareReport(Out):
    run_dir: str
    created_at: str
    human_sources: dict[str, str]
    n_boot: int
    seed: int
    alpha: float
    seconds: float = 0.0  # the whole comparison, plots included
    seconds_plots: float = 0.0
    study2: list[Study2Result] = []
    study1: list[Study1Result] = []
    ranking: list[RankedRow] = []
    variants: list[VariantPair] = []
    notes: list[str] = []
    plots: list[str] = []
