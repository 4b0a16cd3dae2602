"""The comparison across prompt variants: each measure per wording and pooled, its spread, and ranking flips.

A run crosses a study's prompt wordings (grace.studies.base.PromptVariant; by default every wording in Exp 2, the
main one in Exp 1). For a source (exp2, exp1) that ran several, the study's comparison runs on each wording's
outputs alone and on all of them pooled (each trial one unit: Exp 2's distributions averaged over the wordings a
trial was scored in, Exp 1's replies taken together as the trial's); the pooled result is the headline. Then:

- the **spread** of each model's ranking measure across the wordings: min, max, range and SD (ddof 1);
- a **ranking flip**: two models whose order by the ranking measure (JS divergence, lower first; else findings
  reproduced, more first) is one way under one wording and the other way under another (strictly both times).
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable
from typing import Any

import numpy as np

from grace.compare.outputs import POOLED, StudyOutputs
from grace.compare.plugin import Comparison
from grace.compare.resample import shown
from grace.compare.schema import Difference, RankedRow, RankingFlip, VariantSpread
from grace.records import MAIN_VARIANT
from grace.ui_format import MISSING, sig

SOURCES = ("exp2", "exp1")


def _tag(results: list[Any], variant: str) -> list[Any]:
    for r in results:
        if "prompt_variant" in type(r).model_fields:
            r.prompt_variant = variant
    return results


def _source(result: Any) -> str | None:
    return getattr(result, "source", None)


def several_wordings(out: StudyOutputs) -> bool:
    """Whether a source of these outputs ran more than one prompt wording."""
    return any(len(out.prompt_variants(s)) > 1 for s in SOURCES)


def headline_outputs(out: StudyOutputs) -> StudyOutputs:
    """The outputs the headline measures (and the paired differences between models) are computed on: pooled over
    the prompt wordings where a source ran several, else as they are."""
    return out.pooled() if several_wordings(out) else out


def compare_variants(part: Comparison, out: StudyOutputs, human: Any, alpha: float, n_boot: int,
                     rng: np.random.Generator) -> tuple[list[Any], list[Any]]:
    """The headline results of one model's outputs (per source: its one wording's, or pooled over its wordings)
    and the per-wording results of every source that ran several (empty when none did)."""
    wordings = {s: out.prompt_variants(s) for s in SOURCES}
    if not several_wordings(out):
        results = part.compare(out, human, alpha, n_boot, rng)
        return [_tag([r], (wordings.get(_source(r) or "") or [MAIN_VARIANT])[0])[0] for r in results], []
    every = sorted({v for vs in wordings.values() for v in vs}, key=lambda v: (v != MAIN_VARIANT, v))
    per = {v: part.compare(out.for_variant(v), human, alpha, n_boot, rng) for v in every}
    pooled = part.compare(out.pooled(), human, alpha, n_boot, rng)
    headline: list[Any] = []
    by_variant: list[Any] = []
    for source in SOURCES:
        got = {v: [r for r in per[v] if _source(r) == source] for v in wordings[source]}
        if not got:  # present without a usable record in any wording: its status (no-data) from all of it
            headline += _tag([r for r in pooled if _source(r) == source], MAIN_VARIANT)
        elif len(got) == 1:
            (v, results), = got.items()
            headline += _tag(results, v)
        else:
            headline += _tag([r for r in pooled if _source(r) == source], POOLED)
            by_variant += [r for v, results in got.items() for r in _tag(results, v)]
    return headline, by_variant


def _measure(row: RankedRow, measures: tuple[str, ...]) -> tuple[str, float | None, bool] | None:
    """The row's ranking measure: (name, value, lower is better); None for a study ranked by neither."""
    if "js" in measures:
        return "js", row.js, True
    if "findings" in measures:
        k = row.findings.split("/")[0] if row.findings else ""
        return "findings", float(k) if k.strip().isdigit() else None, False
    return None


def variant_rows(part: Comparison, headline: list[Any], by_variant: list[Any],
                 variant_of: Callable[[str], str | None]) -> list[RankedRow]:
    """The study's ranking within each prompt variant, and pooled, for the sources that ran several wordings."""
    rows: list[RankedRow] = []
    several = {(r.model, _source(r)) for r in by_variant}
    pooled = [r for r in headline if (r.model, _source(r)) in several]
    variants = sorted({r.prompt_variant for r in by_variant}, key=lambda v: (v != MAIN_VARIANT, v))
    for variant, results in [*((v, [r for r in by_variant if r.prompt_variant == v]) for v in variants),
                             (POOLED, pooled)]:
        for source in SOURCES:
            ranked = part.rank([r for r in results if _source(r) == source], variant_of)
            rows += [row.model_copy(update={"prompt_variant": variant}) for row in ranked]
    return rows


def _ahead(a: float, b: float, lower_is_better: bool) -> int:
    """1: a ranks ahead of b; -1: b ahead of a; 0: tied."""
    return 0 if a == b else (1 if (a < b) == lower_is_better else -1)


def spread_and_flips(rows: list[RankedRow], measures_of: Callable[[str], tuple[str, ...]]
                     ) -> tuple[list[VariantSpread], list[RankingFlip]]:
    """Per model the ranking measure's spread across the wordings; per pair of models, the wordings that order
    them differently."""
    table: dict[tuple[str, str, str], dict[str, float | None]] = {}
    pooled: dict[tuple[str, str, str], float | None] = {}
    kind: dict[tuple[str, str], tuple[str, bool]] = {}
    for row in rows:
        got = _measure(row, measures_of(row.study))
        if got is None or row.status != "ok":
            continue
        name, value, lower = got
        kind[(row.study, row.source)] = (name, lower)
        key = (row.study, row.source, row.model)
        if row.prompt_variant == POOLED:
            pooled[key] = value
        else:
            table.setdefault(key, {})[row.prompt_variant] = value
    spreads = []
    for (study, source, model), values in sorted(table.items()):
        vals = [v for v in values.values() if v is not None]
        spreads.append(VariantSpread(
            model=model, study=study, source=source, measure=kind[(study, source)][0], values=values,
            pooled=pooled.get((study, source, model)), n_variants=len(values),
            min=min(vals) if vals else None, max=max(vals) if vals else None,
            range=max(vals) - min(vals) if vals else None, sd=statistics.stdev(vals) if len(vals) > 1 else None))
    flips = []
    for (study, source), (name, lower) in sorted(kind.items()):
        models = sorted(m for s, src, m in table if (s, src) == (study, source))
        for a, b in itertools.combinations(models, 2):
            va, vb = table[(study, source, a)], table[(study, source, b)]
            shared = {v: (float(x), float(y)) for v, x in va.items() if x is not None and (y := vb.get(v)) is not None}
            for v1, v2 in itertools.permutations(shared, 2):
                if _ahead(*shared[v1], lower) == 1 and _ahead(*shared[v2], lower) == -1:
                    flips.append(RankingFlip(
                        study=study, source=source, measure=name, model_a=a, model_b=b, variant_a=v1, variant_b=v2,
                        a_under_a=shared[v1][0], b_under_a=shared[v1][1], a_under_b=shared[v2][0],
                        b_under_b=shared[v2][1]))
    return spreads, flips


def _order(variants: set[str]) -> list[str]:
    return sorted(variants, key=lambda v: (v != MAIN_VARIANT, v))


def findings_lines(rows: list[RankedRow], spreads: list[VariantSpread]) -> list[str]:
    """The findings reproduced under each wording and pooled, for the sources ranked by another measure (JS): a
    model can keep its JS across wordings and still reproduce a finding under one wording only."""
    by_js = {(s.study, s.source) for s in spreads if s.measure != "findings"}
    table: dict[tuple[str, str, str], dict[str, str]] = {}
    for r in rows:
        if (r.study, r.source) in by_js and r.findings:
            table.setdefault((r.study, r.source, r.model), {})[r.prompt_variant] = r.findings
    if not table:
        return []
    variants = _order({v for cells in table.values() for v in cells} - {POOLED})
    out = ["**Findings reproduced under each wording** (of the study's findings that could be tested):", "",
           "| study | source | model | " + " | ".join(variants) + " | pooled |",
           "|---|---|---|" + "---|" * len(variants) + "---|"]
    for (study, source, model), cells in sorted(table.items()):
        out.append(f"| {study} | {source} | {model} | " + " | ".join(cells.get(v, MISSING) for v in variants)
                   + f" | {cells.get(POOLED, MISSING)} |")
    return [*out, ""]


def _difference(d: Difference) -> str:
    fmt = ".0f" if d.measure == "findings" else None
    if d.difference is None:
        return MISSING
    value = f"{d.difference:+.0f}" if fmt else ("+" if d.difference >= 0 else "") + sig(d.difference)
    return f"{value} {shown(d.ci, note=d.no_interval, fmt=fmt)}".strip() + (" ✓" if d.distinguishable else "")


def differences_markdown(by_variant: list[Difference], headline: list[Difference]) -> list[str]:
    """Each pair of models' paired difference under each wording beside the headline (pooled) one, and whether it
    holds under every wording: the same sign everywhere, and distinguishable from 0 everywhere or nowhere."""
    if not by_variant:
        return []
    pooled = {(d.study, d.source, d.measure, d.model, d.other): d for d in headline}
    groups: dict[tuple[str, str, str, str, str], dict[str, Difference]] = {}
    for d in by_variant:
        groups.setdefault((d.study, d.source, d.measure, d.model, d.other), {})[d.prompt_variant] = d
    out = ["**Differences between models under each wording** (model - other on each measure, paired bootstrap over "
           "the trials both answered in that wording, 95% interval; ✓: the interval excludes 0). A difference "
           "*holds* when it has the same sign under every wording and is distinguishable under all of them or "
           "none; otherwise it *depends on the wording*.", ""]
    for key, cells in sorted(groups.items()):
        study, source, measure, model, other = key
        ds = [cells[v] for v in _order(set(cells))]
        signs = {(d.difference > 0) - (d.difference < 0) for d in ds if d.difference is not None}
        sure = {bool(d.distinguishable) for d in ds}
        verdict = ("holds" if len(signs) == 1 and len(sure) == 1 else "**depends on the wording**") \
            if all(d.difference is not None for d in ds) else "not computable under every wording"
        parts = [f"{d.prompt_variant} {_difference(d)}" for d in ds]
        if key in pooled:
            parts.append(f"pooled {_difference(pooled[key])}")
        out.append(f"- {study} {source} {measure}, {model} - {other}: " + "; ".join(parts) + f": {verdict}")
    return [*out, ""]


def markdown(spreads: list[VariantSpread], flips: list[RankingFlip], rows: list[RankedRow] | None = None
             ) -> list[str]:
    """compare.md's section on the prompt variants (nothing when no source ran more than one wording)."""
    if not spreads:
        return []
    variants = _order({v for s in spreads for v in s.values})
    out = ["## Prompt variants", "",
           "Each model's ranking measure under each prompt wording (docs/studies.md), pooled over them (each trial "
           "one unit: the headline above), and its spread across the wordings (range; SD, ddof 1). JS: lower is "
           "more human-like; findings: reproduced, more is better.", "",
           "| study | source | model | measure | " + " | ".join(variants) + " | pooled | range | SD |",
           "|---|---|---|---|" + "---|" * len(variants) + "---|---|---|"]
    for s in spreads:
        cells = " | ".join(sig(s.values.get(v)) for v in variants)
        out.append(f"| {s.study} | {s.source} | {s.model} | {s.measure} | {cells} | {sig(s.pooled)} | "
                   f"{sig(s.range)} | {sig(s.sd)} |")
    out += ["", *findings_lines(rows or [], spreads), "**Ranking flips across wordings**: "
            + ("none: every pair of models keeps its order under every wording." if not flips else
               f"{len(flips)}: the ranking depends on the wording."), ""]
    for f in flips:
        out.append(f"- {f.study} {f.source} ({f.measure}): **{f.model_a}** ahead of {f.model_b} under "
                   f"`{f.variant_a}` ({sig(f.a_under_a)} vs {sig(f.b_under_a)}), **{f.model_b}** ahead under "
                   f"`{f.variant_b}` ({sig(f.b_under_b)} vs {sig(f.a_under_b)})")
    return [*out, ""] if flips else out
