"""Human baselines: the published figures shipped in data/human/, or a user's own CSV, loaded and validated.

Each study with a comparison reads its own kinds of file (its `Comparison.kinds`, told apart by the header;
leading lines starting with `#` are comments, e.g. a citation): study 2 its proportions, choices or the authors'
raw file, study 1 its findings and knowledgeability (grace/studies/study*/human.py, docs/compare.md). A user's
file replaces the part (study and kind) it provides. Every problem is a DataError naming the file, line and column.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grace.compare.plugin import Comparison, comparisons
from grace.errors import DataError
from grace.paths import project_root
from grace.studies import Study


def human_dir() -> Path:
    return project_root() / "data" / "human"


class HumanData(dict[str, Any]):
    """Per study name, its human data (whatever its comparison reads); also as attributes (`data.study2`)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class Table:
    path: Path
    header: list[str]
    rows: list[tuple[int, dict[str, str]]]  # (line number, row)


def read_table(path: Path) -> Table:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 (byte offset {e.start})") from None
    lines = text.splitlines()
    skip = 0
    while skip < len(lines) and (lines[skip].startswith("#") or not lines[skip].strip()):
        skip += 1
    reader = csv.reader(io.StringIO("\n".join(lines[skip:])), strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataError(f"{path}: no header (empty file or only comments)") from None
    except csv.Error as e:
        raise DataError(f"{path}: line {skip + 1}: {e}") from None
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataError(f"{path}: line {skip + 1}: duplicated column {dupes[0]!r}")
    rows = []
    try:
        for values in reader:
            line = skip + reader.line_num
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise DataError(f"{path}: line {line}: {len(values)} fields, the header has {len(header)}")
            rows.append((line, {h: v.strip() for h, v in zip(header, values, strict=True)}))
    except csv.Error as e:
        raise DataError(f"{path}: line {skip + reader.line_num}: broken CSV quoting: {e}") from None
    if not rows:
        raise DataError(f"{path}: no data rows")
    return Table(path, header, rows)


def where(t: Table, line: int, col: str) -> str:
    return f"{t.path}: line {line}, column {col!r}"


def number(t: Table, line: int, col: str, value: str, lo: float, hi: float) -> float:
    try:
        x = float(value)
    except ValueError:
        raise DataError(f"{where(t, line, col)}: {value!r} is not a number") from None
    if not np.isfinite(x) or not lo <= x <= hi:
        raise DataError(f"{where(t, line, col)}: {value} is outside {lo:g}..{hi:g}")
    return x


def whole_number(t: Table, line: int, col: str, value: str, allowed: range) -> int:
    if not value.lstrip("-").isdigit() or int(value) not in allowed:
        span = f"{allowed.start}..{allowed.stop - 1}"
        raise DataError(f"{where(t, line, col)}: {value!r} is not a whole number in {span}")
    return int(value)


def file_kind(t: Table, parts: list[tuple[Study, Comparison]]) -> tuple[Study, Comparison, str]:
    """The study (and its comparison) and kind of a human-data file, by its header; a DataError when it is of no
    known kind."""
    cols = set(t.header)
    for study, part in parts:
        for kind, needed in part.kinds.items():
            if needed <= cols:
                return study, part, kind
    for _, part in parts:
        part.refuse_header(t)
    forms = [f for _, part in parts for f in part.formats]
    need = "; ".join(forms[:-1]) + "; or " + forms[-1] if len(forms) > 1 else "".join(forms)
    raise DataError(f"{t.path}: header: not a known human-data format (need {need}); see docs/compare.md")


def load_human(studies: Iterable[Study], paths: list[Path] | None = None) -> HumanData:
    """The shipped baselines of these studies, with any user files replacing the part (study/kind) they provide."""
    d = human_dir()
    parts = comparisons(studies)
    data = HumanData({study.name: part.empty_human(d) for study, part in parts})
    defaults = [f for _, part in parts for f in part.default_files(d)]
    for path in [*defaults, *(Path(p) for p in paths or [])]:
        t = read_table(path)
        study, part, kind = file_kind(t, parts)
        data[study.name] = part.read_human(kind, t, data[study.name])
    return data
