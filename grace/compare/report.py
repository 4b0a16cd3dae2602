"""The comparison of a whole run folder: writes RUN_DIR/compare/ (compare.md, compare.json, PNGs) and returns
the report, whose `ranking` is the ranked table (model, study, JS divergence, r, findings, with intervals; tied
models share a rank) and `differences` the paired bootstrap differences between every two models."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from grace.checkpoint import atomic_path, write_json_atomic
from grace.compare import variants
from grace.compare.differences import group_ranks, pair_order
from grace.compare.human import HumanData, load_human
from grace.compare.metrics import DEFAULT_BOOTSTRAP, DEFAULT_SEED
from grace.compare.outputs import StudyOutputs, discover
from grace.compare.plugin import comparisons
from grace.compare.resample import shown
from grace.compare.schema import CompareReport, Difference, RankedRow, Reference, VariantPair
from grace.compare.variants import SOURCES, compare_variants, headline_outputs, spread_and_flips, variant_rows
from grace.config import Config
from grace.errors import DataError
from grace.records import MAIN_VARIANT
from grace.run import safe_name
from grace.studies.base import Study
from grace.ui_format import MISSING, fit_mark, interval, md_table, percent, shown_path, sig
from grace.view.links import trials_link


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


def like_with_like(parts: list[tuple[Any, Any]], results: dict[str, list[Any]],
                   variant_of: Callable[[str], str | None]) -> list[RankedRow]:
    """Each study's ranking, one per source: models' Exp 2 against Exp 2, their Exp 1 against Exp 1 (never a
    model's Exp 1 against its own Exp 2, which measure different things); each row names its prompt wording."""
    out = []
    for study, part in parts:
        res = results[study.name]
        sources = [s for s in SOURCES if any(r.source == s for r in res)]
        sources += sorted({r.source for r in res} - set(sources))
        for source in sources:
            out += [_worded(row, res) for row in part.rank([r for r in res if r.source == source], variant_of)]
    return out


def fitness(run_dir: Path) -> dict[tuple[str, str], bool]:
    """(model, study) -> fit or not, from the run's data-quality report (empty when there is none yet)."""
    path = Path(run_dir) / "report" / "report.json"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {(m, s): bool(r.get("fit")) for m, studies in (report.get("models") or {}).items()
            for s, r in studies.items()}


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


SOURCE_NAMES = {"exp2": "Exp 2 (option probabilities)", "exp1": "Exp 1 (extracted answers)"}


def _trials_of(r: RankedRow) -> str:
    """The trial viewer's address for the trials behind one ranking row (from compare/, the run's viewer)."""
    extra = {"exp2": "ok"} if r.source == "exp2" else {"ext": "ok"} if r.source == "exp1" else {}
    return trials_link(model=safe_name(r.model), study=r.study, phase="study", **extra)


def _rank(r: RankedRow) -> str:
    return f"{r.rank} (tied)" if r.tied_with else str(r.rank)


def _ceiling(x: float | None) -> str:
    return "" if x is None else f"{sig(x)}x"


def _measured(value: float | None, ci: tuple[float, float] | None, why: str, label: str, reasons: list[str],
              fmt: str | None = None) -> str:
    """A measure with its interval, or "(no CI)" with the reason kept for the row's note (a long reason in a
    table cell would widen its column past the pane)."""
    if value is None:
        return MISSING
    text = f"{value:{fmt}}" if fmt else _num(value)
    if ci is not None:
        return f"{text} {shown(ci, fmt=fmt)}"
    if why:
        reasons.append(f"{label}: {why}")
    return f"{text} (no CI)"


def table_lines(ranking: list[RankedRow], studies: Iterable[Study], references: list[Reference] | None = None,
                fit: dict[tuple[str, str], bool] | None = None, links: bool = True) -> list[str]:
    """The ranking as Markdown: per study and source (like with like) a table of each model's rank, data-quality
    verdict (`fit`, from the run's report), JS with its interval and as a multiple of the humans' noise ceiling,
    and findings reproduced; then a table of its r and unreadable replies; then the study's human references (the
    noise ceiling) as a line. Models that share a rank are tied. Narrow tables, so that they fit the UI's pane
    (one of Prefect's two UIs never wraps a cell): an interval withheld reads "(no CI)", its reason and any other
    note numbered under the tables. Each model links to its trials (`links`; the command prints them without);
    `studies` say which measures a row has."""
    measures = _measures(studies)
    refs = references or []
    lines: list[str] = []
    notes: list[str] = []

    def footnote(text: str, where: str) -> str:
        if not text:
            return ""
        notes.append(f"{where}: {text}")
        return f"[{len(notes)}]"

    def table(head: list[str], body: list[list[str]]) -> list[str]:
        return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *("| " + " | ".join(c) + " |" for c in body)]

    groups: dict[tuple[str, str], list[RankedRow]] = {}
    for r in ranking:
        groups.setdefault((r.study, r.source), []).append(r)
    for (study, source), rows in groups.items():
        m = measures.get(study, ())
        worded = any(r.prompt_variant != MAIN_VARIANT for r in rows)  # several wordings ran: pooled or one's
        head = ["rank", "model"] + (["prompt"] if worded else []) + ["data quality"] + \
            (["JS [95% CI]", "x ceiling"] if "js" in m else []) + (["findings"] if "findings" in m else []) + ["note"]
        body, more = [], []
        for r in rows:
            model = (f"[{r.model}]({_trials_of(r)})" if links else r.model) + \
                (f" (variant of {r.variant_of})" if r.variant_of else "")
            reasons: list[str] = []
            cells = [_rank(r), model] + ([r.prompt_variant] if worded else []) + [fit_of(fit or {}, r.model, r.study)]
            if "js" in m:
                cells += [_measured(r.js, r.js_ci, r.no_interval, "JS", reasons), _ceiling(r.js_vs_ceiling)]
            if "findings" in m:
                cells.append(f"{r.findings} " + (shown(r.findings_ci, fmt=".0f") or "(no CI)") if r.findings else "")
                if r.findings and r.findings_ci is None and r.findings_no_interval:
                    reasons.append(f"findings: {r.findings_no_interval}")
            r_cell = _measured(r.r, r.r_ci, r.no_interval if "js" not in m else "", "r", reasons) if "r" in m else ""
            note = r.message if r.status == "ok" else f"**{r.status}**: {r.message}"
            tied = f"tied with {', '.join(r.tied_with)}" if r.tied_with else ""
            cells.append(footnote("; ".join(filter(None, [tied, note, *reasons])), f"{r.model}, {study} {source}"))
            body.append(cells)
            more.append([r.model] + ([r.prompt_variant] if worded else []) + ([r_cell] if "r" in m else []) +
                        [MISSING if r.unparseable_share is None else percent(r.unparseable_share)])
        lines += [f"### {study}, {SOURCE_NAMES.get(source, source)}", "", *table(head, body), ""]
        lines += [*table(["model"] + (["prompt"] if worded else []) + (["r [95% CI]"] if "r" in m else []) +
                         ["unparseable"], more), ""]
        for ref in (x for x in refs if x.study == study):
            parts = ([f"JS {_num(ref.js)} {_ci(ref.js_ci)}".strip() + " (1x)"] if "js" in m and ref.js is not None
                     else []) + ([f"r {_num(ref.r)} {_ci(ref.r_ci)}".strip()] if "r" in m and ref.r is not None else [])
            lines += [f"{ref.label}: {', '.join(parts) or MISSING} {footnote(ref.note, f'{ref.label}, {study}')}"
                      .rstrip(), ""]
    if notes:
        lines += ["Notes:", "", *[f"{i}. {n}" for i, n in enumerate(notes, start=1)], ""]
    return lines


def fit_of(fit: dict[tuple[str, str], bool], model: str, study: str) -> str:
    """The data-quality verdict of a model on a study, for a table cell ("—" when the report has none)."""
    v = fit.get((model, study), fit.get((safe_name(model), study)))
    return MISSING if v is None else fit_mark(v)


def ranking_rows(ranking: list[RankedRow], studies: Iterable[Study], references: list[Reference] | None = None,
                 fit: dict[tuple[str, str], bool] | None = None) -> list[dict[str, str]]:
    """The ranking as rows for the UI's table artifact, narrow enough for its pane (its cells do not wrap): the
    same columns in every row (the UI takes them from the first), 3 significant digits, intervals as "[a, b]" (or
    why there is none: "n=1, no interval"); ranked within study and source, tied models sharing a rank;
    "human-likeness" holds the study's own measure (JS divergence, lower is closer; else published findings
    reproduced), "x ceiling" JS as a multiple of the humans' noise ceiling, "findings" the published findings
    reproduced; "quality" is the report's fit / not fit of the model on the study (`fit`, see `fitness`); a
    study's human references (the noise ceiling) after each of its blocks. Notes and r are in
    grace-compare-details."""
    measures = _measures(studies)
    rows = []
    refs = references or []
    for i, r in enumerate(ranking):
        m = measures.get(r.study, ())
        like = MISSING
        fi = f"{r.findings} findings {shown(r.findings_ci, note=r.findings_no_interval, fmt='.0f')}".strip() \
            if r.findings else MISSING
        if r.status != "ok":
            like = f"not compared ({r.status})"
        elif "js" in m:
            like = f"JS {sig(r.js)} {shown(r.js_ci, note=r.no_interval)}".strip() if r.js is not None else MISSING
        elif "findings" in m:
            like = fi
        rows.append({
            "study": r.study, "source": r.source, "rank": _rank(r),
            "model": r.model + (f" (of {r.variant_of})" if r.variant_of else ""), "prompt": r.prompt_variant,
            "status": r.status, "quality": fit_of(fit or {}, r.model, r.study), "human-likeness [95% CI]": like,
            "x ceiling": _ceiling(r.js_vs_ceiling), "findings [95% CI]": fi if "findings" in m else "",
            "unread": "" if r.unparseable_share is None else percent(r.unparseable_share),
        })
        if i + 1 == len(ranking) or (ranking[i + 1].study, ranking[i + 1].source) != (r.study, r.source):
            rows += [{"study": ref.study, "source": MISSING, "rank": MISSING, "model": ref.label, "prompt": MISSING,
                      "status": "", "quality": "",
                      "human-likeness [95% CI]": f"JS {sig(ref.js)} {interval(ref.js_ci)}".strip(),
                      "x ceiling": "1x", "findings [95% CI]": "", "unread": ""}
                     for ref in refs if ref.study == r.study]
    return rows


LIKENESS = "likeness [95% CI]"


def glance(ranking: list[RankedRow], studies: Iterable[Study], references: list[Reference] | None = None,
           fit: dict[tuple[str, str], bool] | None = None) -> tuple[list[dict[str, str]], str]:
    """The ranking at a glance, for the UI's `grace-compare` table artifact, whose cells never wrap in a pane about
    700 px wide: rows of few, short columns (study and source in one; the verdict as plain text, or the row's
    status when it was not compared; an interval, or "(no CI)" with the reason left to grace-compare-details),
    and the humans' noise ceiling in the returned description instead of rows of its own."""
    measures = _measures(studies)
    worded = any(r.prompt_variant != MAIN_VARIANT for r in ranking)
    rows = []
    for r in ranking:
        m = measures.get(r.study, ())
        findings = (f"{r.findings} {shown(r.findings_ci, fmt='.0f') or '(no CI)'}" if r.findings else MISSING)
        if r.status != "ok":
            like = MISSING
        elif "js" in m:
            like = f"{sig(r.js)} {shown(r.js_ci) or '(no CI)'}" if r.js is not None else MISSING
        else:
            like = findings
        verdict = fit_of(fit or {}, r.model, r.study).replace("**", "") if r.status == "ok" else r.status
        rows.append({"study": f"{r.study} {r.source}", "rank": _rank(r),
                     "model": r.model + (f" (of {r.variant_of})" if r.variant_of else ""),
                     **({"prompt": r.prompt_variant} if worded else {}), "quality": verdict, LIKENESS: like,
                     "x ceil.": _ceiling(r.js_vs_ceiling),
                     "findings": findings if "js" in m and "findings" in m else ""})
    ceilings = "; ".join(f"{ref.study} JS {sig(ref.js)} {interval(ref.js_ci)}".strip()
                         for ref in references or [] if ref.js is not None)
    about = ("Grace: how human-like is each model, ranked within study and source (models whose paired bootstrap "
             "difference includes 0 share a rank). likeness: JS divergence from the humans (lower is closer) where "
             "the study has one, else published findings reproduced; x ceil.: JS as a multiple of the humans' "
             "split-half noise ceiling" + (f" ({ceilings})" if ceilings else "") + "; findings: the paper's "
             "findings reproduced, k of n. Intervals, r and notes: grace-compare-details.")
    return rows, about


def difference_lines(diffs: list[Difference]) -> list[str]:
    """The paired differences as a Markdown table: one row per pair of models, source and measure."""
    rows = []
    for d in diffs:
        verdict = f"{d.better} better" if d.distinguishable else "tied" if d.difference is not None else MISSING
        fmt = ".0f" if d.measure == "findings" else None  # a count of findings
        value = "" if d.difference is None else (f"{d.difference:+.0f}" if fmt else
                                                 ("+" if d.difference >= 0 else "") + sig(d.difference))
        diff = f"{value} {shown(d.ci, note=d.no_interval, fmt=fmt)}".strip() or MISSING
        pair = f"{d.model} - {d.other}" + (" (variant - base)" if d.variant_pair else "")
        rows.append([d.study, d.source, pair, d.measure, str(d.n_trials), _num(d.model_value, fmt),
                     _num(d.other_value, fmt), diff, verdict])
    return md_table(["study", "source", "model - other", "measure", "n trials", "model", "other",
                     "difference [95% CI]", "verdict"], rows,
                    empty="No two models in this run answered the same study: no differences to show.")


def markdown(rep: CompareReport, studies: Iterable[Study], plots_drawn: bool = True,
             fit: dict[tuple[str, str], bool] | None = None) -> str:
    studies = list(studies)
    parts = comparisons(studies)
    out = [f"# Human comparison: run `{Path(rep.run_dir).name}`", "",
           f"Created {rep.created_at}; bootstrap {rep.n_boot} resamples of trials (seed {rep.seed}); "
           f"alpha {rep.alpha}; took {rep.seconds:.2f} s "
           f"({rep.seconds_plots:.2f} s of it for the plots).", "",
           "Human data: " + "; ".join(f"{k}: `{shown_path(v)}`" for k, v in rep.human_sources.items()), "",
           " ".join(part.legend for _, part in parts if part.legend), "",
           "## Ranking", "",
           "Like with like: one table per study and source (a model's Exp 2 ranked against the other models' Exp 2, "
           "its Exp 1 against their Exp 1). Rank: 1 + the number of models whose difference from this one on the "
           "study's primary measure (study 2: JS; study 1: findings) has a paired-bootstrap 95% interval excluding "
           "0; models that share a rank are tied. An interval needs at least 2 trials in every cell it is computed "
           "from (else \"n=1, no interval\"). Each model links to its trials in the trial viewer.", "",
           *table_lines(rep.ranking, studies, rep.references, fit), ""]
    if rep.variants:
        primary = {study.name: part.primary for study, part in parts}
        js_diff = {(d.model, d.other, d.study, d.source): d for d in rep.differences
                   if d.variant_pair and d.measure == primary.get(d.study)}
        out += ["## Quantized vs full precision", "", "| variant | base | study | source | JS variant | JS base | "
                "findings variant | findings base | paired difference [95% CI] |",
                "|---|---|---|---|---|---|---|---|---|"]
        for v in rep.variants:
            d = js_diff.get((v.model, v.base, v.study, v.source))
            diff = "" if d is None or d.difference is None else \
                f"{d.measure} {_num(d.difference)} {shown(d.ci, note=d.no_interval)}".strip()
            out.append(f"| {v.model} | {v.base} | {v.study} | {v.source} | {_num(v.model_js)} | {_num(v.base_js)} | "
                       f"{v.model_findings} | {v.base_findings} | {diff} |")
        out.append("")
    if rep.differences:
        out += ["## Differences between models (paired bootstrap)", "",
                "Per pair of models, on the trials both answered: model - other for each ranking measure, with the "
                "95% interval from resampling the same trials for both (within cells; Exp 1 replicates within "
                "trials); where several prompt wordings ran, on the measures pooled over them (the headline). "
                "\"tied\": the interval includes 0.", "", *difference_lines(rep.differences), ""]
    out += variants.markdown(rep.variant_spread, rep.ranking_flips, rep.by_prompt_variant)
    out += variants.differences_markdown(rep.differences_by_prompt_variant, rep.differences)
    for study, part in parts:
        out += part.markdown(rep.results(study.name))
    if rep.notes:
        out += ["## Notes", "", *[f"- {n}" for n in rep.notes], ""]
    out += ["## Plots", "", *([f"![{Path(p).stem}]({Path(p).name})" for p in rep.plots]
                              or [("_No plots: no model output could be compared with the humans._" if plots_drawn
                                   else "_No plots: drawing them was turned off._")]), ""]
    return "\n".join(out)


def differences(stages: list[StudyOutputs], studies: Iterable[Study], human: HumanData, alpha: float, n_boot: int,
                rng: np.random.Generator, variant_of: Callable[[str], str | None]) -> list[Difference]:
    """Every two models' paired differences, study by study (a variant first, before its base)."""
    out: list[Difference] = []
    for study, part in comparisons(studies):
        if human.get(study.name) is None:
            continue
        mine = sorted((st for st in stages if st.study.name == study.name), key=lambda st: st.model)
        bases = {st.model: variant_of(st.model) for st in mine}
        index = {st.model: i for i, st in enumerate(mine)}
        pairs, variant = [], set()
        for a, b in combinations(mine, 2):
            if a.model != b.model:
                first, second, is_variant = pair_order(a.model, b.model, bases)
                pairs.append((index[first], index[second]))
                if is_variant:
                    variant.add((first, second))
        for d in part.paired(mine, pairs, human[study.name], alpha, n_boot, rng) if pairs else []:
            d.variant_pair = (d.model, d.other) in variant
            out.append(d)
    return out


def differences_by_wording(stages: list[StudyOutputs], studies: Iterable[Study], human: HumanData, alpha: float,
                           n_boot: int, rng: np.random.Generator, variant_of: Callable[[str], str | None]
                           ) -> list[Difference]:
    """The paired differences between models within each prompt wording, for the sources that ran several: whether
    a headline difference (on the pooled outputs) holds under every wording or comes from one of them."""
    several = [st for st in stages if variants.several_wordings(st)]
    worded = {(st.study.name, s) for st in several for s in SOURCES if len(st.prompt_variants(s)) > 1}
    wordings = sorted({v for st in several for s in SOURCES for v in st.prompt_variants(s)},
                      key=lambda v: (v != MAIN_VARIANT, v))
    out: list[Difference] = []
    for v in wordings:
        alone = [st.for_variant(v) for st in several if any(v in st.prompt_variants(s) for s in SOURCES)]
        out += [d.model_copy(update={"prompt_variant": v})
                for d in differences(alone, studies, human, alpha, n_boot, rng, variant_of)
                if (d.study, d.source) in worded]
    return out


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
    for study, part in parts:
        if human.get(study.name) is not None:
            notes += part.notes(human[study.name])
    sources = {k: v for study, part in parts if human.get(study.name) is not None
               for k, v in part.sources(human[study.name]).items()}
    rep = CompareReport.model_validate({
        "run_dir": str(run_dir), "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "human_sources": sources, "n_boot": n_boot, "seed": seed, "alpha": alpha, "notes": notes, **results})

    def variant_of(model: str) -> str | None:
        return _variant_of(cfg, model)

    # the differences, like the headline, on each model's pooled outputs where several prompt wordings ran
    rep.differences = differences([headline_outputs(st) for st in stages], studies, human, alpha, n_boot, rng,
                                  variant_of)
    ranked = like_with_like(parts, results, variant_of)
    rep.ranking = group_ranks(ranked, rep.differences, {study.name: part.primary for study, part in parts})
    rep.references = [ref for study, part in parts if human.get(study.name) is not None
                      for ref in part.references(human[study.name])]
    rep.variants = variant_pairs(rep.ranking)
    rep.by_prompt_variant = [row for study, part in parts
                             for row in variant_rows(part, results[study.name], by_variant[study.name], variant_of)]
    measures = _measures(studies)
    rep.variant_spread, rep.ranking_flips = spread_and_flips(rep.by_prompt_variant,
                                                             lambda s: measures.get(s, ()))
    rep.differences_by_prompt_variant = differences_by_wording(stages, studies, human, alpha, n_boot, rng, variant_of)
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
        tmp.write_text(markdown(rep, studies, plots_drawn=plots, fit=fitness(run_dir)), encoding="utf-8")
    return rep
