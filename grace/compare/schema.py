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
    variants: list[VariantPair] = []
    by_prompt_variant: list[RankedRow] = []  # the ranking within each prompt variant (and pooled), where several ran
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
