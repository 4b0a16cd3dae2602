"""Pydantic models of the comparison written to RUN_DIR/compare/compare.json (each study's results are its own:
grace/studies/<study>/results.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer

Interval = tuple[float, float] | None


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RankedRow(Out):
    rank: int
    model: str
    variant_of: str | None = None
    study: str
    source: str
    prompt_variant: str = "main"  # the prompt wording the row measures, or "pooled" over every wording run
    status: str
    js: float | None = None
    js_ci: Interval = None
    r: float | None = None
    r_ci: Interval = None
    findings: str = ""  # "k/8"
    findings_ci: Interval = None
    unparseable_share: float | None = None
    message: str = ""
    # rank is 1 + the number of models (same study and source) distinguishably better on the study's primary
    # measure (paired bootstrap, `differences`); models that share a rank are tied, listed here
    tied_with: list[str] = []
    js_vs_ceiling: float | None = None  # JS as a multiple of the humans' split-half JS (the noise ceiling)
    no_interval: str = ""  # why js_ci / r_ci are withheld, e.g. "n=1 in 3 of 12 cells, no interval"
    findings_no_interval: str = ""  # why findings_ci is withheld


class Difference(Out):
    """A paired bootstrap difference of one ranking measure between two models (model - other), on the trials
    both answered, the same trials resampled for both."""

    study: str
    source: str
    model: str
    other: str
    measure: str  # js, r, findings
    n_trials: int  # trials both answered (in the cells / conditions compared)
    model_value: float | None = None
    other_value: float | None = None
    difference: float | None = None
    ci: Interval = None
    distinguishable: bool | None = None  # the interval excludes 0; None: no interval
    better: str | None = None  # the model distinguishably better on this measure, if any
    variant_pair: bool = False  # one model is a (quantized) variant of the other
    no_interval: str = ""
    # "": the headline difference (on the outputs pooled over the wordings where several ran); else the wording
    # whose outputs alone it was computed on (CompareReport.differences_by_prompt_variant)
    prompt_variant: str = ""


class Reference(Out):
    """A human reference shown beside a study's ranked rows (e.g. the humans' split-half noise ceiling)."""

    study: str
    label: str
    js: float | None = None
    js_ci: Interval = None
    r: float | None = None
    r_ci: Interval = None
    note: str = ""


class VariantPair(Out):
    model: str  # e.g. the AWQ build
    base: str  # the full-precision model it is a variant of
    study: str
    source: str
    model_js: float | None = None
    base_js: float | None = None
    model_findings: str = ""
    base_findings: str = ""


class VariantSpread(Out):
    """One model's ranking measure across the prompt variants of a study and source."""

    model: str
    study: str
    source: str
    measure: str  # "js" (lower is more human-like) or "findings" (reproduced, higher is better)
    values: dict[str, float | None]  # variant -> the measure
    pooled: float | None = None
    n_variants: int
    min: float | None = None
    max: float | None = None
    range: float | None = None
    sd: float | None = None  # across variants (ddof 1)


class RankingFlip(Out):
    """Two models ordered one way by the ranking measure under one prompt variant and the other way under another."""

    study: str
    source: str
    measure: str
    model_a: str
    model_b: str
    variant_a: str  # model_a ranks ahead of model_b here
    variant_b: str  # model_b ranks ahead of model_a here
    a_under_a: float
    b_under_a: float
    a_under_b: float
    b_under_b: float


class CompareReport(Out):
    """The whole comparison. Each compared study's results are a field named after it (`study2`, `study1`: a
    list of that study's result models), beside the declared ones."""

    model_config = ConfigDict(extra="allow")

    run_dir: str
    created_at: str
    human_sources: dict[str, str]
    n_boot: int
    seed: int
    alpha: float
    seconds: float = 0.0  # the whole comparison, plots included
    seconds_plots: float = 0.0
    ranking: list[RankedRow] = []
    references: list[Reference] = []
    differences: list[Difference] = []
    variants: list[VariantPair] = []
    by_prompt_variant: list[RankedRow] = []  # the ranking within each prompt variant (and pooled), where several ran
    differences_by_prompt_variant: list[Difference] = []  # the paired differences within each wording (several ran)
    variant_spread: list[VariantSpread] = []
    ranking_flips: list[RankingFlip] = []
    notes: list[str] = []
    plots: list[str] = []

    @model_serializer(mode="wrap")
    def _studies_before_ranking(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """compare.json keeps its layout: the studies' lists after the timings, before the ranking."""
        data = handler(self)
        studies = [k for k in (self.model_extra or {}) if k in data]
        rest = [k for k in data if k not in studies]
        at = rest.index("ranking")
        return {k: data[k] for k in (*rest[:at], *studies, *rest[at:])}

    def results(self, study: str) -> list[Any]:
        """The results of one study (empty when it was not compared)."""
        return list((self.model_extra or {}).get(study, []))
