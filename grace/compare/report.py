"""The comparison of a whole run folder: writes RUN_DIR/compare/ (compare.md, compare.json, PNGs) and returns
the report, whose `ranking` is the ranked table (model, study, JS divergence, r, findings, with intervals)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from grace.checkpoint import atomic_path, write_json_atomic
from grace.compare import variants
from grace.compare.human import load_human
from grace.compare.metrics import DEFAULT_BOOTSTRAP, DEFAULT_SEED
from grace.compare.outputs import discover
from grace.compare.plugin import comparisons
from grace.compare.schema import CompareReport, RankedRow, VariantPair
from grace.compare.variants import compare_variants, spread_and_flips, variant_rows
from grace.config import Config
from grace.errors import DataError
from grace.run import safe_name
from grace.studies.base import Study
from grace.ui_format import MISSING, interval, percent, shown_path, sig


def _variant_of(cfg: Config | None, model: str) -> str | None:
    if cfg is None:
        return None
    for m in cfg.models.values():
        if model in (m.name, safe_name(m.name)):
            return m.variant_of
    return None


def _ci(ci: tuple[float, float] | None, fmt: str | None = None) -> str:
    """An interval, "[a, b]": 3 significant digits, or `fmt` (e.g. ".0f" for counts)."""
    if not ci:
        return ""
    return interval(ci) if fmt is None else f"[{ci[0]:{fmt}}, {ci[1]:{fmt}}]"


def _num(x: float | None, fmt: str | None = None) -> str:
    """A number: 3 significant digits, or `fmt`; None as a dash."""
    return sig(x) if (x is None or fmt is None) else f"{x:{fmt}}"


def _measures(studies: Iterable[Study]) -> dict[str, tuple[str, ...]]:
    """The measures each study's ranking rows carry (its comparison's), by study name."""
    return {s.name: s.comparison.measures for s in studies if s.comparison is not None}


def _worded(row: RankedRow, results: list[Any]) -> RankedRow:
    """The row with the prompt variant of the result it ranks (one wording's, or pooled)."""
    for r in results:
        if r.model == row.model and getattr(r, "source", None) == row.source:
            row.prompt_variant = str(getattr(r, "prompt_variant", row.prompt_variant))
    return row


def variant_pairs(ranking: list[RankedRow]) -> list[VariantPair]:
    """Quantized (or other) variants beside the model they are a variant of, when both are in the run."""
    by_key = {(r.model, r.study, r.source): r for r in ranking}
    pairs = []
    for r in ranking:
        base = by_key.get((r.variant_of, r.study, r.source)) if r.variant_of else None
        if base is not None:
            pairs.append(VariantPair(model=r.model, base=base.model, study=r.study, source=r.source,
                                     model_js=r.js, base_js=base.js, model_findings=r.findings,
                                     base_findings=base.findings))
    return pairs


def table_lines(ranking: list[RankedRow], studies: Iterable[Study]) -> list[str]:
    """The ranked table as Markdown lines (also printed by the command); `studies` say which measures a row has."""
    measures = _measures(studies)
    lines = ["| study | rank | model | source | prompt | JS divergence [95% CI] | r [95% CI] | findings [95% CI] | "
             "unparseable | note |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in ranking:
        model = r.model + (f" (variant of {r.variant_of})" if r.variant_of else "")
        m = measures.get(r.study, ())
        js = f"{_num(r.js)} {_ci(r.js_ci)}" if "js" in m else ""
        rr = f"{_num(r.r)} {_ci(r.r_ci)}" if "r" in m else ""
        fi = f"{r.findings} {_ci(r.findings_ci, '.0f')}" if "findings" in m else ""
        un = "" if r.unparseable_share is None else percent(r.unparseable_share)
        note = r.message if r.status == "ok" else f"**{r.status}**: {r.message}"
        lines.append(f"| {r.study} | {r.rank} | {model} | {r.source} | {r.prompt_variant} | {js} | {rr} | {fi} | {un} "
                     f"| {note} |")
    return lines


def ranking_rows(ranking: list[RankedRow], studies: Iterable[Study]) -> list[dict[str, str]]:
    """The ranked table as rows for the UI's table artifact: the same columns in every row (the UI takes them
    from the first), 3 significant digits, intervals as "[a, b]"; one "human-likeness" column holds the
    study's own measure (JS divergence, lower is closer; else published findings reproduced)."""
    measures = _measures(studies)
    rows = []
    for r in ranking:
        m = measures.get(r.study, ())
        like = MISSING
        if "js" in m:
            like = f"JS {sig(r.js)} {interval(r.js_ci)}".strip() if r.js is not None else MISSING
        elif "findings" in m:
            like = f"{r.findings} findings {_ci(r.findings_ci, '.0f')}".strip() if r.findings else MISSING
        corr = (f"{sig(r.r)} {interval(r.r_ci)}".strip() if r.r is not None else MISSING) if "r" in m else ""
        rows.append({
            "study": r.study, "rank": str(r.rank),
            "model": r.model + (f" (variant of {r.variant_of})" if r.variant_of else ""),
            "source": r.source, "prompt": r.prompt_variant, "status": r.status, "human-likeness [95% CI]": like,
            "r [95% CI]": corr,
            "unparseable": "" if r.unparseable_share is None else percent(r.unparseable_share),
            "note": r.message,
        })
    return rows


def markdown(rep: CompareReport, studies: Iterable[Study], plots_drawn: bool = True) -> str:
    studies = list(studies)
    parts = comparisons(studies)
    out = [f"# Human comparison: run `{Path(rep.run_dir).name}`", "",
           f"Created {rep.created_at}; bootstrap {rep.n_boot} resamples of trials (seed {rep.seed}); "
           f"alpha {rep.alpha}; took {rep.seconds:.2f} s "
           f"({rep.seconds_plots:.2f} s of it for the plots).", "",
           "Human data: " + "; ".join(f"{k}: `{shown_path(v)}`" for k, v in rep.human_sources.items()), "",
           " ".join(part.legend for _, part in parts if part.legend), "",
           "## Ranking", "", *table_lines(rep.ranking, studies), ""]
    if rep.variants:
        out += ["## Quantized vs full precision", "", "| variant | base | study | source | JS variant | JS base | "
                "findings variant | findings base |", "|---|---|---|---|---|---|---|---|"]
        out += [f"| {v.model} | {v.base} | {v.study} | {v.source} | {_num(v.model_js)} | {_num(v.base_js)} | "
                f"{v.model_findings} | {v.base_findings} |" for v in rep.variants]
        out.append("")
    out += variants.markdown(rep.variant_spread, rep.ranking_flips)
    for study, part in parts:
        out += part.markdown(rep.results(study.name))
    if rep.notes:
        out += ["## Notes", "", *[f"- {n}" for n in rep.notes], ""]
    out += ["## Plots", "", *([f"![{Path(p).stem}]({Path(p).name})" for p in rep.plots]
                              or [("_No plots: no model output could be compared with the humans._" if plots_drawn
                                   else "_No plots: drawing them was turned off._")]), ""]
    return "\n".join(out)


def compare_run(run_dir: Path, studies: Iterable[Study], human_files: list[Path] | None = None,
                cfg: Config | None = None, out_dir: Path | None = None, n_boot: int = DEFAULT_BOOTSTRAP,
                seed: int = DEFAULT_SEED, alpha: float = 0.05, plots: bool = True) -> CompareReport:
    """Compare every model/study in RUN_DIR (of these studies) with the human data; write out_dir (default
    RUN_DIR/compare)."""
    studies = list(studies)
    t0 = time.perf_counter()
    if n_boot < 1:
        raise DataError("--bootstrap must be at least 1")
    if not 0 < alpha < 1:
        raise DataError("--alpha must lie between 0 and 1")
    run_dir = Path(run_dir)
    human = load_human(studies, human_files)
    stages = discover(run_dir, studies, cfg)
    rng = np.random.default_rng(seed)
    parts = comparisons(studies)
    results: dict[str, list[Any]] = {study.name: [] for study, _ in parts}
    by_variant: dict[str, list[Any]] = {study.name: [] for study, _ in parts}  # where a source ran several wordings
    notes: list[str] = []
    for st in stages:
        notes += [f"{st.model}/{st.study.name}: {n}" for n in st.notes]
        part = st.study.comparison
        if part is None:
            notes.append(f"{st.model}/{st.study.name}: this study has no human comparison")
            continue
        if human.get(st.study.name) is None:
            notes.append(f"{st.model}/{st.study.name}: no human data loaded")
            continue
        headline, per_variant = compare_variants(part, st, human[st.study.name], alpha, n_boot, rng)
        results[st.study.name] += headline
        by_variant[st.study.name] += per_variant
    sources = {k: v for study, part in parts if human.get(study.name) is not None
               for k, v in part.sources(human[study.name]).items()}
    rep = CompareReport.model_validate({
        "run_dir": str(run_dir), "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "human_sources": sources, "n_boot": n_boot, "seed": seed, "alpha": alpha, "notes": notes, **results})

    def variant_of(model: str) -> str | None:
        return _variant_of(cfg, model)

    rep.ranking = [_worded(row, results[study.name]) for study, part in parts
                   for row in part.rank(results[study.name], variant_of)]
    rep.variants = variant_pairs(rep.ranking)
    rep.by_prompt_variant = [row for study, part in parts
                             for row in variant_rows(part, results[study.name], by_variant[study.name], variant_of)]
    measures = _measures(studies)
    rep.variant_spread, rep.ranking_flips = spread_and_flips(rep.by_prompt_variant,
                                                             lambda s: measures.get(s, ()))
    out_dir = Path(out_dir) if out_dir else run_dir / "compare"
    out_dir.mkdir(parents=True, exist_ok=True)
    t_plots = time.perf_counter()
    if plots:
        for study, part in parts:
            if results[study.name] and human.get(study.name) is not None:
                rep.plots += [str(p) for p in part.plots(results[study.name], human[study.name], out_dir)]
    rep.seconds_plots = time.perf_counter() - t_plots
    rep.seconds = time.perf_counter() - t0
    write_json_atomic(out_dir / "compare.json", rep.model_dump(mode="json"))
    with atomic_path(out_dir / "compare.md") as tmp:
        tmp.write_text(markdown(rep, studies, plots_drawn=plots), encoding="utf-8")
    return rep
