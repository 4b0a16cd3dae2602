"""The data-quality report of a run folder: checks, verdicts, plots, as Markdown and JSON in run_dir/report/."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from grace.checkpoint import atomic_path, write_json_atomic
from grace.config import ModelConfig, load_config
from grace.errors import ConfigError, UserInputError
from grace.report import plots, position
from grace.report.checks import (
    MAX_ERROR_RATE,
    MAX_TRUNCATION_RATE,
    MIN_OK_RATE,
    MIN_OPTION_MASS,
    StudyChecks,
    run_checks,
)
from grace.report.load import StudyData, discover
from grace.report.plugin import ReportPart, report_part
from grace.run import safe_name
from grace.studies.base import Study
from grace.ui_format import counts, fit_mark, mark, md_escape, sig
from grace.view.links import VIEWER, check_link, trials_link


def _models() -> dict[str, ModelConfig]:
    """model folder name -> its config entry (config/models.yaml), when the config loads."""
    try:
        cfg = load_config()
    except (ConfigError, OSError):
        return {}
    return {safe_name(m.name): m for m in cfg.models.values()}


def _variants() -> dict[str, str]:
    """model folder name -> folder name of the full-precision model it is a variant of (config/models.yaml)."""
    return {name: safe_name(m.variant_of) for name, m in _models().items() if m.variant_of}


def _mass_limit(model: str, models: dict[str, ModelConfig]) -> float:
    m = models.get(model)
    return m.checks.min_option_mass if m is not None and m.checks.min_option_mass is not None else MIN_OPTION_MASS


def _order(models: list[str], variants: dict[str, str]) -> list[str]:
    """Models sorted, each variant right after its full-precision model when both are present."""
    out: list[str] = []
    for m in sorted(models):
        if variants.get(m) in models:
            continue
        out.append(m)
        out += sorted(v for v, base in variants.items() if base == m and v in models)
    return out + [m for m in sorted(models) if m not in out]


def _label(model: str, variants: dict[str, str]) -> str:
    return f"{model} (quantized variant of {variants[model]})" if model in variants else model


def _pair_rows(base: StudyData, var: StudyData, sb: StudyChecks, sv: StudyChecks) -> dict[str, Any]:
    """Side-by-side numbers of a full-precision model and its quantized variant on one study."""
    def rate(sc: StudyChecks, exp: str, key: str, name: str) -> Any:
        return sc.metrics.get(exp, {}).get(key, {}).get(name)

    out: dict[str, Any] = {
        "ok rate": (rate(sb, "extracted", "status_rates", "ok"), rate(sv, "extracted", "status_rates", "ok")),
        "truncation rate": (sb.metrics.get("exp1", {}).get("truncation_rate"),
                            sv.metrics.get("exp1", {}).get("truncation_rate")),
        "fit": (sb.fit, sv.fit),
    }
    return {**out, **report_part(base.study).variant_rows(base, var)}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return "-" if v is None else str(v)


def build_report(run_dir: Path, studies: Iterable[Study]) -> Path:
    """Check every model x study of the run (of these studies) and write run_dir/report/{report.md, report.json,
    *.png}."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserInputError(f"{run_dir}: not a folder")
    stages = discover(run_dir, studies)
    preflights = read_preflights(run_dir)
    if not stages and not preflights:
        raise UserInputError(f"{run_dir}: no <model>/<study>/ folders with exp1.jsonl, exp2.jsonl or extracted.jsonl")
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):  # the report is rebuilt whole: a plot not drawn this time must not linger
        old.unlink()
    variants = _variants()
    configs = _models()
    by_study: dict[str, dict[str, StudyData]] = {}
    study_of: dict[str, Study] = {}
    for s in stages:
        by_study.setdefault(s.study.name, {})[s.model] = s
        study_of[s.study.name] = s.study

    results: dict[str, dict[str, StudyChecks]] = {}
    study_plots: dict[tuple[str, str], list[str]] = {}
    plot_notes: list[str] = []  # a plot left out because it would be empty, said in a sentence
    for study, models in by_study.items():
        part = report_part(study_of[study])
        expected: set[str] = set()
        wordings: dict[str, set[str]] = {}  # the prompt variants each experiment ran, over the run's models
        for d in models.values():
            for exp in ("exp1", "exp2"):
                expected |= {r.trial_id for r in (d.records.get(exp) or {}).values()}
                wordings.setdefault(exp, set()).update(r.prompt_variant for r in (d.records.get(exp) or {}).values())
        for model, d in models.items():
            sc = run_checks(d, expected, _mass_limit(model, configs), wordings)
            results.setdefault(model, {})[study] = sc
            paths = []
            if "extracted" in d.records:
                paths = part.study_plots(d, _label(model, variants), out, f"{safe_name(model)}_{study}")
                if not paths and type(part).study_plots is not ReportPart.study_plots:
                    plot_notes.append(f"{model} / {study}: no plot of its answers: none could be read from its "
                                      "replies")
            study_plots[(model, study)] = [p.name for p in paths]

    run_plots: list[str] = []
    status_rows = [(f"{m} / {s}", sc.metrics["extracted"]["status"]) for m in _order(list(results), variants)
                   for s, sc in sorted(results[m].items()) if "extracted" in sc.metrics]
    if status_rows:
        run_plots.append(plots.status_bars(status_rows, out / "parse_status.png").name)
    pairs: list[dict[str, Any]] = []
    for study, models in sorted(by_study.items()):
        order = [m for m in _order(list(models), variants) if "extracted" in models[m].records]
        if not order:
            continue
        drawn = report_part(study_of[study]).compare_plot([(_label(m, variants), models[m]) for m in order],
                                                          out / f"compare_{study}.png")
        if drawn is not None:
            run_plots.append(drawn.name)
        elif type(report_part(study_of[study])).compare_plot is not ReportPart.compare_plot:
            plot_notes.append(f"{study}: no plot of the models side by side: no model's answers could be read")
        for var, base in variants.items():
            if var in models and base in models:
                pairs.append({"study": study, "full": base, "quantized": var,
                              "rows": _pair_rows(models[base], models[var], results[base][study],
                                                 results[var][study])})

    report = {
        "run_dir": str(run_dir), "generated_at": datetime.now(UTC).isoformat(),
        "thresholds": {"max_error_rate": MAX_ERROR_RATE, "max_truncation_rate": MAX_TRUNCATION_RATE,
                       "min_ok_rate": MIN_OK_RATE, "min_option_mass": MIN_OPTION_MASS},
        "models": {m: {s: {"fit": sc.fit, "reasons": sc.reasons, "checks": [c.as_dict() for c in sc.checks],
                           "metrics": sc.metrics, "plots": study_plots.get((m, s), [])}
                       for s, sc in sorted(studies.items())} for m, studies in sorted(results.items())},
        "preflight": preflights,
        "position_bias": [b for m, studies in sorted(results.items()) for _, sc in sorted(studies.items())
                          for b in sc.metrics.get("position_bias", [])],
        "variant_pairs": [{**p, "rows": {k: list(v) for k, v in p["rows"].items()}} for p in pairs],
        "plots": run_plots,
        "plot_notes": plot_notes,
    }
    write_json_atomic(out / "report.json", report)
    md = render_markdown(report, variants)
    target = out / "report.md"
    with atomic_path(target) as tmp:
        tmp.write_text(md, encoding="utf-8")
    return target


def read_preflights(run_dir: Path) -> dict[str, dict[str, Any]]:
    """model folder -> its preflight.json (grace.preflight), for every model that ran one."""
    out = {}
    for path in sorted(Path(run_dir).glob("*/preflight/preflight.json")):
        try:
            out[path.parent.parent.name] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return out


def _reasons(model: str, study: str, checks: list[dict[str, Any]]) -> str:
    """The failed fatal checks, each a link to the trials behind it (the trial viewer, grace.view)."""
    failed = [c for c in checks if c["fatal"] and not c["passed"]]
    return "; ".join(f"[{md_escape(c['experiment'])}: {md_escape(c['detail'])}]"
                     f"({check_link(model, study, c['experiment'], c['name'])})" for c in failed) or "-"


def _preflight_checks(model: str, pf: dict[str, Any]) -> str:
    """What a reader must see of a preflight: its failed checks and warnings (linked), else that all passed."""
    shown = [c for c in pf.get("checks", []) if not c["passed"]]
    if not shown:
        return f"all {len(pf.get('checks', []))} checks passed"
    return "; ".join(f"{mark(False, c['fatal'])} [{md_escape(c['name'])}: {md_escape(c['detail'])}]"
                     f"({check_link(model, 'all', 'preflight', c['name'])})" for c in shown)


def render_markdown(report: dict[str, Any], variants: dict[str, str]) -> str:
    lines = [f"# Data-quality report: run `{Path(report['run_dir']).name}`", "",
             f"Generated {report['generated_at']}. Each reason links to the trials behind it in the trial viewer "
             f"(`{VIEWER}` in the run folder).", "",
             "## Verdict", ""]
    # Lists, not tables, wherever text is long: one of Prefect's two UIs never wraps a table cell.
    for m, pf in sorted(report.get("preflight", {}).items()):
        if not pf.get("passed"):
            lines.append(f"- **{_label(m, variants)}** (all studies): ✗ **stopped at preflight**: "
                         f"[{md_escape(str(pf.get('reason')))}]({check_link(m, 'all', 'preflight', 'exp1')})")
    for m in _order(list(report["models"]), variants):
        for s, r in report["models"][m].items():
            reasons = _reasons(m, s, r["checks"])
            lines.append(f"- **{_label(m, variants)} / {s}**: {fit_mark(r['fit'])}"
                         + (f": {reasons}" if reasons != "-" else ""))
    t = report["thresholds"]
    lines += ["", f"Not fit when: rows lost, duplicated or unreadable; invalid probabilities; more than "
              f"{t['max_error_rate']:.0%} failed requests; more than {t['max_truncation_rate']:.0%} truncated "
              f"replies; fewer than {t['min_ok_rate']:.0%} replies fully read (status ok).", ""]
    if report.get("position_bias"):
        lines += ["## Position bias", "", "Answer options are listed in counterbalanced orders; a model that "
                  "chooses by content spreads its choices evenly over the listed positions. Flagged when the "
                  "listed position explains the choices more than the options do (position TV > option TV, "
                  f"permutation test p < {position.ALPHA}); see docs/extraction.md.", "",
                  *position.markdown(report["position_bias"]), ""]
    lines += [f"_{md_escape(n)}._" for n in report.get("plot_notes", [])]
    if report.get("plot_notes"):
        lines.append("")
    for p in report["plots"]:
        lines += [f"![{p}]({p})", ""]
    if report.get("preflight"):
        lines += ["## Preflight", ""]
        for m, pf in sorted(report["preflight"].items()):
            result = "✓ passed" if pf.get("passed") else "✗ **stopped**"
            lines.append(f"- **{_label(m, variants)}**: {result} in {sig(pf.get('wall_s'))} s: "
                         f"{_preflight_checks(m, pf)}")
        lines.append("")
    if report["variant_pairs"]:
        lines += ["## Quantized vs full precision", ""]
        for p in report["variant_pairs"]:
            lines += [f"### {p['study']}: {p['full']} vs {p['quantized']}", "",
                      f"| measure | {p['full']} | {p['quantized']} |", "|---|---|---|"]
            lines += [f"| {k} | {_fmt(v[0])} | {_fmt(v[1])} |" for k, v in p["rows"].items()]
            lines.append("")
    for m in _order(list(report["models"]), variants):
        for s, r in report["models"][m].items():
            lines += [f"## {_label(m, variants)} / {s}: {fit_mark(r['fit'])}", ""]
            for c in r["checks"]:
                detail = md_escape(c["detail"])
                if not c["passed"]:
                    detail = f"[{detail}]({check_link(m, s, c['experiment'], c['name'])})"
                lines.append(f"- {mark(c['passed'], c['fatal'])} · {c['experiment']} {c['name']}: {detail}")
            met = r["metrics"]
            if "extracted" in met:
                e = met["extracted"]
                unread = trials_link(model=m, study=s, phase="study", ext="!ok")
                lines += ["", "Extraction status: " + ", ".join(f"{k} {v:.1%}" for k, v in e["status_rates"].items())
                          + "; method: " + ", ".join(f"{k} {v:.1%}" for k, v in e["method_rates"].items())
                          + "; missing per field: " + counts(e["missing"])
                          + f" ([the replies not fully read]({unread}))"]
            if "exp1" in met:
                e = met["exp1"]
                cut = e["finish_reason"].get("length", 0)
                missing = {k: v for k, v in e["missing"].items() if v}
                cut_link = (f" ([the {cut} cut by max_tokens]"
                            f"({trials_link(model=m, study=s, phase='study', finish='length')}))") if cut else ""
                lines += ["", f"Exp 1: {e['rows']} replies, finish reasons {counts(e['finish_reason'])}{cut_link}, "
                          f"reply length mean {sig(e['response_chars']['mean'])} chars (max "
                          f"{sig(e['response_chars']['max'])}), {sig(e['completion_tokens_mean'])} tokens on average; "
                          f"missing: {counts(missing) if missing else 'none'}."]
            for exp, w in (met.get("server") or {}).items():
                lines += ["", f"Server ({exp}): waited {w['waited_s']} s over {w['server_waits']} restart(s) "
                          f"waited through, {w['server_stops']} stop(s): {w['wait_reasons'] or '-'}"]
            if met.get("agreement"):
                lines += ["", "Exp 1 stated answer vs Exp 2 argmax: " + "; ".join(
                    f"{md_escape(k)} {v['agree']}/{v['pairs']}" for k, v in met["agreement"].items())]
            lines += [""] + [f"![{p}]({p})" for p in r["plots"]] + [""]
    return "\n".join(lines) + "\n"
