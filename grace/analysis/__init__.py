"""The run's analysis/ folder, for the lab's own statistics: the all-models tables per study and experiment (CSV and
Parquet), their codebook (README.md, datapackage.json), the R reader that recomputes the human comparison's figures
(grace.R) and the human data that comparison read (human/).

Written at the end of every run (the flow, after the report and the comparison) and by `grace report RUN_DIR`.
The file names and columns are a contract with the lab's scripts (docs/analysis.md).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from grace.analysis.codebook import columns_markdown, datapackage, resource
from grace.analysis.sources import read_run
from grace.analysis.tables import Table, build_tables, write_table
from grace.checkpoint import atomic_path, write_json_atomic
from grace.compare.human import human_dir
from grace.compare.plugin import comparisons
from grace.errors import ConfigError, DataError
from grace.paths import project_root
from grace.studies import Study

FOLDER = "analysis"
SHIPPED = ("README.md", "grace.R")  # copied from the repository's analysis/ into every run's


def shipped_dir() -> Path:
    """The repository's analysis/ folder (the codebook's text and grace.R)."""
    return project_root() / "analysis"


@dataclass
class AnalysisSummary:
    folder: Path
    tables: dict[str, int] = field(default_factory=dict)  # table name -> rows
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        if not self.tables:
            return "analysis tables: none (no records)"
        return f"analysis tables in {self.folder}: " + ", ".join(f"{k} ({v} rows)" for k, v in self.tables.items())


def human_files(run_dir: Path, studies: Iterable[Study]) -> dict[str, Path]:
    """The human data the comparison read (compare.json's sources), else these studies' shipped files; by file
    name."""
    sources: list[Path] = []
    try:
        compared = json.loads((run_dir / "compare" / "compare.json").read_text(encoding="utf-8"))
        sources = [Path(p) for p in (compared.get("human_sources") or {}).values()]
    except (OSError, ValueError):
        pass
    if not sources or not all(p.is_file() for p in sources):
        sources = [p for _, part in comparisons(studies) for p in part.default_files(human_dir())]
    out: dict[str, Path] = {}
    for i, p in enumerate(dict.fromkeys(sources)):
        out[p.name if p.name not in out else f"{i}-{p.name}"] = p
    return out


def _copy(src: Path, target: Path) -> Path:
    with atomic_path(target) as tmp:
        shutil.copyfile(src, tmp)
    return target


def write_analysis(run_dir: Path, studies: Iterable[Study]) -> AnalysisSummary:
    """Write RUN_DIR/analysis/ from the run's records of these studies; a table no longer made is removed."""
    run_dir = Path(run_dir)
    studies = list(studies)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: run folder not found")
    shipped = shipped_dir()
    missing = [n for n in SHIPPED if not (shipped / n).is_file()]
    if missing:
        raise ConfigError(f"{shipped}: {', '.join(missing)} missing (the analysis folder of Grace's checkout)")
    run = read_run(run_dir, studies)
    out = AnalysisSummary(run_dir / FOLDER, notes=run.notes)
    if not run.stages:  # e.g. every model stopped at its preflight
        out.notes.append(f"{run_dir}: no <model>/<study>/ records: no analysis tables written")
        return out
    tables: list[Table] = build_tables(run)
    out.folder.mkdir(parents=True, exist_ok=True)
    resources = []
    for t in tables:
        csv_path, parquet_path = write_table(t, out.folder)
        out.files += [csv_path, parquet_path]
        out.tables[t.name] = t.rows
        resources.append(resource(t, csv_path))
    made = {p.name for p in out.files}
    for stale in [*out.folder.glob("*_all_models.csv"), *out.folder.glob("*_all_models.parquet")]:
        if stale.name not in made:
            stale.unlink()
    write_json_atomic(out.folder / "datapackage.json", datapackage(run_dir, resources))
    with atomic_path(out.folder / "README.md") as tmp:
        tmp.write_text((shipped / "README.md").read_text(encoding="utf-8") + columns_markdown(tables, run.notes),
                       encoding="utf-8")
    out.files += [out.folder / "datapackage.json", out.folder / "README.md", _copy(shipped / "grace.R",
                                                                                   out.folder / "grace.R")]
    human = out.folder / "human"
    if human.is_dir():
        shutil.rmtree(human)
    human.mkdir()
    out.files += [_copy(src, human / name) for name, src in human_files(run_dir, studies).items()]
    readable(out.files)
    return out


def readable(paths: list[Path]) -> None:
    """Files as the user's umask makes new files (atomic writes start from a private temporary file): a lab reading
    the run from a shared folder can open them."""
    mask = os.umask(0)
    os.umask(mask)
    for p in paths:
        p.chmod(0o666 & ~mask)


__all__ = ["AnalysisSummary", "write_analysis"]
