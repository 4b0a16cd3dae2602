"""The comparison of a whole run folder: writes RUN_DIR/compare/ (compare.md, compare.json, PNGs) and returns
the report, whose `ranking` is the ranked table (model, study, JS divergence, r, findings, with intervals)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from grace.checkpoint import atomic_path, write_json_atomic
from grace.compare.human import load_human
from grace.compare.metrics import DEFAULT_BOOTSTRAP, DEFAULT_SEED
from grace.compare.outputs import discover
from grace.compare.plots import plot_study1, plot_study2
from grace.compare.schema import CompareReport, FindingResult, RankedRow, Study1Result, Study2Result, VariantPair
from grace.compare.study1 import compare_study1
from grace.compare.study2 import compare_study2
from grace.config import Config
from grace.errors import DataError
from grace.run import safe_name
from grace.ui_format import MISSING, counts, interval, md_table, percent, shown_path, sig


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


def rank(study2: list[Study2Result], study1: list[Study1Result], cfg: Config | None) -> list[RankedRow]:
    """Study 2 rows by JS divergence (lower is more human-like), then study 1 rows by findings reproduced."""
    rows: list[RankedRow] = []
    s2 = sorted(study2, key=lambda r: (r.status != "ok", r.js if r.js is not None else np.inf, r.model, r.source))
    for i, r in enumerate(s2, start=1):
        rows.append(RankedRow(rank=i, model=r.model, variant_of=_variant_of(cfg, r.model), study="study2",
                              source=r.source, status=r.status, js=r.js, js_ci=r.js_ci, r=r.r, r_ci=r.r_ci,
                              unparseable_share=r.unparseable_share, message=r.message or r.r_note))
    s1 = sorted(study1, key=lambda r: (r.status != "ok", -r.reproduced, r.model, r.source))
    for i, r in enumerate(s1, start=1):
        rows.append(RankedRow(rank=i, model=r.model, variant_of=_variant_of(cfg, r.model), study="study1",
                              source=r.source, status=r.status,
                              findings=f"{r.reproduced}/{r.findings_total}", findings_ci=r.reproduced_ci,
                              unparseable_share=r.unparseable_share, message=r.message))
    return rows


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


def table_lines(ranking: list[RankedRow]) -> list[str]:
    """The ranked table as Markdown lines (also printed by the command)."""
    lines = ["| study | rank | model | source | JS divergence [95% CI] | r [95% CI] | findings [95% CI] | "
             "unparseable | note |", "|---|---|---|---|---|---|---|---|---|"]
    for r in ranking:
        model = r.model + (f" (variant of {r.variant_of})" if r.variant_of else "")
        js = f"{_num(r.js)} {_ci(r.js_ci)}" if r.study == "study2" else ""
        rr = f"{_num(r.r)} {_ci(r.r_ci)}" if r.study == "study2" else ""
        fi = f"{r.findings} {_ci(r.findings_ci, '.0f')}" if r.study == "study1" else ""
        un = "" if r.unparseable_share is None else percent(r.unparseable_share)
        note = r.message if r.status == "ok" else f"**{r.status}**: {r.message}"
        lines.append(f"| {r.study} | {r.rank} | {model} | {r.source} | {js} | {rr} | {fi} | {un} | {note} |")
    return lines


def ranking_rows(ranking: list[RankedRow]) -> list[dict[str, str]]:
    """The ranked table as rows for the UI's table artifact: the same columns in every row (the UI takes them
    from the first), 3 significant digits, intervals as "[a, b]"; one "human-likeness" column holds the
    study's own measure (study 2: JS divergence, lower is closer; study 1: published findings reproduced)."""
    rows = []
    for r in ranking:
        if r.study == "study2":
            like = f"JS {sig(r.js)} {interval(r.js_ci)}".strip() if r.js is not None else MISSING
            corr = f"{sig(r.r)} {interval(r.r_ci)}".strip() if r.r is not None else MISSING
        else:
            like = f"{r.findings} findings {_ci(r.findings_ci, '.0f')}".strip() if r.findings else MISSING
            corr = ""
        rows.append({
            "study": r.study, "rank": str(r.rank),
            "model": r.model + (f" (variant of {r.variant_of})" if r.variant_of else ""),
            "source": r.source, "status": r.status, "human-likeness [95% CI]": like, "r [95% CI]": corr,
            "unparseable": "" if r.unparseable_share is None else percent(r.unparseable_share),
            "note": r.message,
        })
    return rows


def _reproduced(f: FindingResult) -> str:
    if f.reproduced:
        return "**yes**"
    return "not testable" if f.p_value is None else "no"


def markdown(rep: CompareReport, plots_drawn: bool = True) -> str:
    out = [f"# Human comparison: run `{Path(rep.run_dir).name}`", "",
           f"Created {rep.created_at}; bootstrap {rep.n_boot} resamples of trials (seed {rep.seed}); "
           f"alpha {rep.alpha}; took {rep.seconds:.2f} s "
           f"({rep.seconds_plots:.2f} s of it for the plots).", "",
           "Human data: " + "; ".join(f"{k}: `{shown_path(v)}`" for k, v in rep.human_sources.items()), "",
           "JS divergence: Jensen-Shannon (bits, 0 = identical) per goal x state cell, mean over cells. "
           "r: Pearson over the cell x utterance proportions. Findings: published pairwise comparisons of study 1 "
           "reproduced (one-sided paired t-test across trials, significant exactly where the humans' was).", "",
           "## Ranking", "", *table_lines(rep.ranking), ""]
    if rep.variants:
        out += ["## Quantized vs full precision", "", "| variant | base | study | source | JS variant | JS base | "
                "findings variant | findings base |", "|---|---|---|---|---|---|---|---|"]
        out += [f"| {v.model} | {v.base} | {v.study} | {v.source} | {_num(v.model_js)} | {_num(v.base_js)} | "
                f"{v.model_findings} | {v.base_findings} |" for v in rep.variants]
        out.append("")
    for r2 in rep.study2:
        out += [f"## Study 2: {r2.model} ({r2.source})", ""]
        if r2.source == "exp1":
            out.append(f"{r2.n_responses} responses, {r2.unparseable} unparseable "
                       f"({_num(None if r2.unparseable_share is None else 100 * r2.unparseable_share, '.1f')}%); "
                       f"statuses: {counts(r2.status_counts)}.")
        if r2.message or r2.r_note:
            out.append(f"Note: {'; '.join(filter(None, [r2.message, r2.r_note]))}")
        cells = []
        for c in r2.cells:
            top_m = max(c.model, key=c.model.get)  # type: ignore[arg-type]
            top_h = max(c.human, key=c.human.get)  # type: ignore[arg-type]
            cells.append([c.goal, c.state, str(c.n_trials), f"{sig(c.js)} {_ci(c.js_ci)}",
                          f"{top_m} ({c.model[top_m]:.2f})", f"{top_h} ({c.human[top_h]:.2f})"])
        out += ["", *md_table(["goal", "state", "n", "JS [95% CI]", "top model choice", "top human choice"], cells,
                              empty=f"No goal x state cell to compare: {r2.message or 'no usable trials'}."), ""]
    for r1 in rep.study1:
        out += [f"## Study 1: {r1.model} ({r1.source})", "",
                f"{r1.reproduced} of {r1.findings_total} findings reproduced {_ci(r1.reproduced_ci, '.0f')}; "
                f"{r1.n_trials} trials with posterior bets; {r1.unparseable} of {r1.n_responses} without usable "
                f"posterior; statuses: {counts(r1.status_counts)}."]
        if r1.message:
            out.append(f"Note: {r1.message}")
        out += ["", *md_table(
            ["finding", "humans significant", "n", "mean a", "mean b", "t", "p", "model significant", "reproduced",
             "note"],
            [[f.label, "yes" if f.humans else "no", str(f.n_trials), _num(f.mean_a, ".1f"), _num(f.mean_b, ".1f"),
              _num(f.statistic), _num(f.p_value), "yes" if f.model_significant else "no", _reproduced(f),
              f.note or MISSING] for f in r1.findings],
            empty="No published finding loaded.")]
        out += ["", *md_table(
            ["access", "observe", "n", "mean bets 0/1/2/3"],
            [[str(c.access), str(c.observe), str(c.n_trials), " / ".join(f"{c.mean[s]:.1f}" for s in "0123")]
             for c in r1.conditions],
            empty=f"No mean bets: {r1.message or 'no trial with usable posterior bets'}.")]
        order = {True: "yes", False: "no", None: "—"}[r1.knowledge_order_matches]
        out += ["", f"Knowledgeability (bet the speaker knows, of 100); ordering by access as humans: {order}", "",
                "| access | n | model [95% CI] | humans (SD) | difference |", "|---|---|---|---|---|"]
        out += [f"| {k.access} | {k.n_trials} | {_num(k.model_mean, '.1f')} {_ci(k.model_ci, '.1f')} | "
                f"{_num(k.human_mean, '.1f')} ({_num(k.human_sd, '.1f')}) | {_num(k.difference, '+.1f')} |"
                for k in r1.knowledge]
        out.append("")
    if rep.notes:
        out += ["## Notes", "", *[f"- {n}" for n in rep.notes], ""]
    out += ["## Plots", "", *([f"![{Path(p).stem}]({Path(p).name})" for p in rep.plots]
                              or [("_No plots: no model output could be compared with the humans._" if plots_drawn
                                   else "_No plots: drawing them was turned off._")]), ""]
    return "\n".join(out)


def compare_run(run_dir: Path, human_files: list[Path] | None = None, cfg: Config | None = None,
                out_dir: Path | None = None, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = DEFAULT_SEED,
                alpha: float = 0.05, plots: bool = True) -> CompareReport:
    """Compare every model/study in RUN_DIR with the human data; write out_dir (default RUN_DIR/compare)."""
    t0 = time.perf_counter()
    if n_boot < 1:
        raise DataError("--bootstrap must be at least 1")
    if not 0 < alpha < 1:
        raise DataError("--alpha must lie between 0 and 1")
    run_dir = Path(run_dir)
    human = load_human(human_files)
    stages = discover(run_dir, cfg)
    rng = np.random.default_rng(seed)
    rep = CompareReport(run_dir=str(run_dir), created_at=datetime.now(UTC).isoformat(timespec="seconds"),
                        human_sources={}, n_boot=n_boot, seed=seed, alpha=alpha)
    for st in stages:
        rep.notes += [f"{st.model}/{st.study.name}: {n}" for n in st.notes]
        if st.study.name == "study2":
            if human.study2 is None:
                rep.notes.append(f"{st.model}/study2: no human study 2 data loaded")
                continue
            rep.study2 += compare_study2(st, human.study2, n_boot, rng)
        elif st.study.name == "study1" and human.study1 is not None:
            rep.study1 += compare_study1(st, human.study1, alpha, n_boot, rng)
    if human.study2 is not None:
        rep.human_sources["study2"] = human.study2.source
    if human.study1 is not None:
        rep.human_sources["study1 findings"] = human.study1.source
        rep.human_sources["study1 knowledgeability"] = human.study1.knowledge_source
    rep.ranking = rank(rep.study2, rep.study1, cfg)
    rep.variants = variant_pairs(rep.ranking)
    out_dir = Path(out_dir) if out_dir else run_dir / "compare"
    out_dir.mkdir(parents=True, exist_ok=True)
    t_plots = time.perf_counter()
    if plots:
        if rep.study2 and human.study2 is not None:
            for source in ("exp2", "exp1"):
                res = [r for r in rep.study2 if r.source == source and r.status == "ok"]
                if res:
                    what = "Exp 2: option probabilities" if source == "exp2" else "Exp 1: extracted choices"
                    title = f"Study 2 ({what}) vs humans (Yoon et al. 2020)"
                    rep.plots.append(str(plot_study2(res, human.study2, out_dir / f"study2_{source}.png", title)))
        if any(r.status == "ok" for r in rep.study1) and human.study1 is not None:
            rep.plots.append(str(plot_study1(rep.study1, human.study1, out_dir / "study1.png")))
    rep.seconds_plots = time.perf_counter() - t_plots
    rep.seconds = time.perf_counter() - t0
    write_json_atomic(out_dir / "compare.json", rep.model_dump(mode="json"))
    with atomic_path(out_dir / "compare.md") as tmp:
        tmp.write_text(markdown(rep, plots_drawn=plots), encoding="utf-8")
    return rep
