"""Runs side by side: each run's comparison with the humans and its data-quality verdict, in one table per study
and source (`grace compare RUN_A RUN_B`), so two runs - two prompt versions, two dates, two clusters - read like
with like: the same study, the same source (Exp 2 against Exp 2, Exp 1 against Exp 1), model by model.

Each run is compared afresh with the same human data, bootstrap and seed, into OUT/<run>/ (the run folders are
not written); OUT/compare.md and compare.json hold the side-by-side table. `grace view RUN_A RUN_B` shows their
trials side by side.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grace.checkpoint import atomic_path, write_json_atomic
from grace.compare.report import compare_run, fitness, ranking_rows
from grace.compare.schema import CompareReport
from grace.config import Config
from grace.errors import UserInputError
from grace.studies.base import Study
from grace.ui_format import MISSING, md_table
from grace.view.links import VIEWER, fragment

LIKENESS = "human-likeness [95% CI]"
SOURCE_NAMES = {"exp2": "Exp 2 (option probabilities)", "exp1": "Exp 1 (extracted answers)"}


@dataclass
class RunSide:
    """One run's part: its folder, its comparison and the data-quality verdict per (model, study)."""

    run_dir: Path
    report: CompareReport
    fit: dict[tuple[str, str], bool]

    @property
    def name(self) -> str:
        return self.run_dir.name


def _cell(row: dict[str, str] | None) -> str:
    if row is None:
        return MISSING
    return f"{row[LIKENESS]} · {row['quality']}" if row["quality"] else row[LIKENESS]  # a human reference: no verdict


def _reference_last(item: tuple[str, dict[str, dict[str, str]]]) -> tuple[bool, str]:
    """Models by name, then the humans' references (the noise ceiling), which have no rank."""
    return any(c["rank"] == MISSING for c in item[1].values()), item[0]


def side_by_side(sides: list[RunSide], studies: list[Study]) -> list[dict[str, Any]]:
    """One table per (study, source): a row per model in any run, a column per run (measure · fit)."""
    rows: dict[tuple[str, str], dict[str, dict[str, dict[str, str]]]] = {}
    for side in sides:
        source = MISSING
        for r in ranking_rows(side.report.ranking, studies, side.report.references, side.fit):
            source = r["source"] if r["source"] != MISSING else source  # a human reference: the block above it
            rows.setdefault((r["study"], source), {}).setdefault(r["model"], {})[side.name] = r
    tables = []
    for (study, source), by_model in rows.items():
        tables.append({"study": study, "source": source, "runs": [s.name for s in sides],
                       "rows": [{"model": m, **{s.name: _cell(cells.get(s.name)) for s in sides}}
                                for m, cells in sorted(by_model.items(), key=_reference_last)]})
    return tables


def markdown(sides: list[RunSide], tables: list[dict[str, Any]], out: Path) -> str:
    lines = [f"# Runs side by side: {', '.join(f'`{s.name}`' for s in sides)}", "",
             "Each cell: the study's measure of how human-like the model is, with its 95% interval (JS divergence, "
             "lower is closer; or published findings reproduced), then the run's data-quality verdict. Rows compare "
             "like with like: one study, one source, the same human data and bootstrap for every run.", ""]
    for t in tables:
        lines += [f"## {t['study']}, {SOURCE_NAMES.get(t['source'], t['source'])}", ""]
        lines += md_table(["model", *t["runs"]], [[r["model"], *(r[n] for n in t["runs"])] for r in t["rows"]],
                          empty="No model of these runs was compared on this study.")
        lines.append("")
    lines += ["## The runs", ""]
    for s in sides:
        link = f"{s.run_dir.as_posix()}/{VIEWER}"
        lines.append(f"- `{s.name}`: {s.run_dir} - its trials: `{link}`; this run's comparison: "
                     f"`{(out / s.name / 'compare.md').as_posix()}`")
        lines += [f"  - note: {n}" for n in s.report.notes]
    lines += ["", f"Every trial of these runs side by side: `grace view {' '.join(str(s.run_dir) for s in sides)}` "
              f"(a filter per run: `{fragment(run=sides[0].name)}`).", ""]
    return "\n".join(lines)


def compare_runs(run_dirs: list[Path], studies: Iterable[Study], out: Path, human_files: list[Path] | None = None,
                 cfg: Config | None = None, **options: Any) -> tuple[Path, list[dict[str, Any]]]:
    """Compare each run (into OUT/<run>/) on these studies and write OUT/compare.md and compare.json side by
    side."""
    studies = list(studies)
    names = [Path(d).name for d in run_dirs]
    if len(set(names)) != len(names):
        raise UserInputError(f"two run folders of the same name ({', '.join(names)}): compare folders named apart")
    sides = []
    for d in run_dirs:
        d = Path(d)
        rep = compare_run(d, studies, human_files, cfg=cfg, out_dir=out / d.name, **options)
        sides.append(RunSide(d, rep, fitness(d)))
    tables = side_by_side(sides, studies)
    write_json_atomic(out / "compare.json", {"runs": [str(s.run_dir) for s in sides], "tables": tables})
    target = out / "compare.md"
    with atomic_path(target) as tmp:
        tmp.write_text(markdown(sides, tables, out), encoding="utf-8")
    return target, tables
