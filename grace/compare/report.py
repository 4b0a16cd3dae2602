"""The comparison of a whole run folder: writes RUN_DIR/compare/ (compare.md, compare.json, PNGs) and returns
the report, whose `ranking` is the ranked table (model, study, JS divergence, r, findings, with intervals)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from grace.checkpoint import atomic_path, write_json_atomic
from grace.compare.human import load_human
from grace.compare.metrics import DEFAULT_BOOTSTRAP, DEFAULT_SEED
from grace.compare.outputs import discover
from grace.compare.plugin import comparisons
from grace.compare.schema import CompareReport, RankedRow, VariantPair
from grace.config import Config
from grace.errors import DataError
from grace.run import safe_name
from grace.studies.base import Study
from grace.ui_format import MISSING, fit_mark, interval, percent, shown_path, sig
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


SOURCES = ("exp2", "exp1")  # Exp 2 (option probabilities) first, then Exp 1 (extracted answers)


def like_with_like(parts: list[tuple[Any, Any]], results: dict[str, list[Any]],
                   variant_of: Callable[[str], str | None]) -> list[RankedRow]:
    """Each study's ranking, one per source: models' Exp 2 against Exp 2, their Exp 1 against Exp 1 (never a
    model's Exp 1 against its own Exp 2, which measure different things)."""
    out = []
    for study, part in parts:
        res = results[study.name]
        sources = [s for s in SOURCES if any(r.source == s for r in res)]
        sources += sorted({r.source for r in res} - set(sources))
        for source in sources:
            out += part.rank([r for r in res if r.source == source], variant_of)
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


def table_lines(ranking: list[RankedRow], studies: Iterable[Study], fit: dict[tuple[str, str], bool] | None = None,
                links: bool = True) -> list[str]:
    """The ranking as Markdown: one table per study and source (like with like), each model's measure with its
    interval and its data-quality verdict (`fit`, from the run's report); notes numbered under the tables, so
    no long text widens a column. Each model links to its trials (`links`; the command prints them without);
    `studies` say which measures a row has."""
    measures = _measures(studies)
    lines: list[str] = []
    notes: list[str] = []
    groups: dict[tuple[str, str], list[RankedRow]] = {}
    for r in ranking:
        groups.setdefault((r.study, r.source), []).append(r)
    for (study, source), rows in groups.items():
        m = measures.get(study, ())
        head = ["rank", "model", "data quality"] + (["JS divergence [95% CI]"] if "js" in m else []) + \
            (["r [95% CI]"] if "r" in m else []) + (["findings [95% CI]"] if "findings" in m else []) + \
            ["unparseable", "note"]
        body = []
        for r in rows:
            model = (f"[{r.model}]({_trials_of(r)})" if links else r.model) + \
                (f" (variant of {r.variant_of})" if r.variant_of else "")
            cells = [str(r.rank), model, fit_of(fit or {}, r.model, r.study)]
            cells += [f"{_num(r.js)} {_ci(r.js_ci)}".strip()] if "js" in m else []
            cells += [f"{_num(r.r)} {_ci(r.r_ci)}".strip()] if "r" in m else []
            cells += [f"{r.findings} {_ci(r.findings_ci, '.0f')}".strip()] if "findings" in m else []
            cells.append(MISSING if r.unparseable_share is None else percent(r.unparseable_share))
            note = r.message if r.status == "ok" else f"**{r.status}**: {r.message}"
            if note:
                notes.append(f"{r.model}, {study} {source}: {note}")
                cells.append(f"[{len(notes)}]")
            else:
                cells.append("")
            body.append(cells)
        lines += [f"### {study}, {SOURCE_NAMES.get(source, source)}", "", "| " + " | ".join(head) + " |",
                  "|" + "---|" * len(head), *("| " + " | ".join(c) + " |" for c in body), ""]
    if notes:
        lines += ["Notes:", "", *[f"{i}. {n}" for i, n in enumerate(notes, start=1)], ""]
    return lines


def fit_of(fit: dict[tuple[str, str], bool], model: str, study: str) -> str:
    """The data-quality verdict of a model on a study, for a table cell ("—" when the report has none)."""
    v = fit.get((model, study), fit.get((safe_name(model), study)))
    return MISSING if v is None else fit_mark(v)


def ranking_rows(ranking: list[RankedRow], studies: Iterable[Study],
                 fit: dict[tuple[str, str], bool] | None = None) -> list[dict[str, str]]:
    """The ranking as rows for the UI's table artifact, narrow enough for its pane (its cells do not wrap): the
    same columns in every row (the UI takes them from the first), 3 significant digits, intervals as "[a, b]";
    ranked within study and source; "human-likeness" holds the study's own measure (JS divergence, lower is
    closer; else published findings reproduced), or why there is none; "quality" is the report's fit / not
    fit of the model on the study (`fit`, see `fitness`). Notes and r are in grace-compare-details."""
    measures = _measures(studies)
    rows = []
    for r in ranking:
        m = measures.get(r.study, ())
        like = MISSING
        if r.status != "ok":
            like = f"not compared ({r.status})"
        elif "js" in m:
            like = f"JS {sig(r.js)} {interval(r.js_ci)}".strip() if r.js is not None else MISSING
        elif "findings" in m:
            like = f"{r.findings} findings {_ci(r.findings_ci, '.0f')}".strip() if r.findings else MISSING
        rows.append({
            "study": r.study, "source": r.source, "#": str(r.rank),
            "model": r.model + (f" (of {r.variant_of})" if r.variant_of else ""),
            "quality": fit_of(fit or {}, r.model, r.study), "human-likeness [95% CI]": like,
            "unread": "" if r.unparseable_share is None else percent(r.unparseable_share),
        })
    return rows


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
           "## Ranking", "", *table_lines(rep.ranking, studies, fit), ""]
    if rep.variants:
        out += ["## Quantized vs full precision", "", "| variant | base | study | source | JS variant | JS base | "
                "findings variant | findings base |", "|---|---|---|---|---|---|---|---|"]
        out += [f"| {v.model} | {v.base} | {v.study} | {v.source} | {_num(v.model_js)} | {_num(v.base_js)} | "
                f"{v.model_findings} | {v.base_findings} |" for v in rep.variants]
        out.append("")
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
        results[st.study.name] += part.compare(st, human[st.study.name], alpha, n_boot, rng)
    sources = {k: v for study, part in parts if human.get(study.name) is not None
               for k, v in part.sources(human[study.name]).items()}
    rep = CompareReport.model_validate({
        "run_dir": str(run_dir), "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "human_sources": sources, "n_boot": n_boot, "seed": seed, "alpha": alpha, "notes": notes, **results})

    def variant_of(model: str) -> str | None:
        return _variant_of(cfg, model)

    rep.ranking = like_with_like(parts, results, variant_of)
    rep.variants = variant_pairs(rep.ranking)
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
