"""What every study provides, and the strict CSV loader shared by all studies."""

from __future__ import annotations

import csv
import io
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from grace.errors import DataError

if TYPE_CHECKING:  # the stages' plug-in contracts (they import the registry, so not at run time)
    from grace.compare.plugin import Comparison
    from grace.extract.plugin import Extraction
    from grace.report.plugin import ReportPart

Trial = dict[str, str]  # the CSV row as strings, plus "trial_id"
Messages = list[dict[str, str]]


@dataclass(frozen=True)
class Question:
    """One Exp 2 question: chat messages whose answer is one of `options` (the answer text itself)."""

    name: str
    messages: Messages
    options: tuple[str, ...]


@dataclass(frozen=True)
class Study(ABC):
    """A study plug-in: its columns, validation, prompts and options (the methods below), and the parts the
    later stages ask it for. A part left None means the stage has nothing study-specific to do: no extraction
    stage, a report of the generic checks only (no plots), no human comparison."""

    name: str
    required_columns: tuple[str, ...]
    optional_columns: tuple[str, ...] = ()
    key_columns: tuple[str, ...] = ()  # identify a trial when present; else the row number does
    condition_columns: tuple[str, ...] = ()  # the keys of `condition()`: the design cell's columns in every table
    prompt_version: str = "v1"
    exp2_prompt_version: str = "v1"
    description: str = ""
    extraction: Extraction | None = None  # how Exp 1 replies are read (grace/extract/plugin.py)
    report: ReportPart | None = None  # agreement, checks and plots of the data-quality report (grace/report/plugin.py)
    comparison: Comparison | None = None  # the human baseline and how to compare with it (grace/compare/plugin.py)

    @abstractmethod
    def check_row(self, row: Trial) -> str | None:
        """A message naming the column if the row's values are invalid, else None."""

    @abstractmethod
    def exp1_messages(self, trial: Trial) -> Messages:
        """The chat messages of the Experiment 1 question."""

    @abstractmethod
    def exp2_questions(self, trial: Trial) -> list[Question]:
        """The Experiment 2 questions, each ending where the answer begins."""

    def condition(self, trial: Trial) -> dict[str, str]:
        """The design cell of a trial (for reports and the human comparison)."""
        return {}

    def context(self, trial: Trial) -> str:
        """What the model was told about the trial, as plain text, for a stage that reads its answer (the
        extraction stage may give it to its LLM); the same words as the prompts."""
        return ""

    def trial_id(self, row: Trial, rownum: int) -> str:
        if self.key_columns and all(row.get(c) for c in self.key_columns):
            return self.name + "-" + "-".join(row[c].strip().replace(" ", "_") for c in self.key_columns)
        return f"{self.name}-row{rownum:05d}"

    def load(self, path: str | Path, limit: int | None = None) -> list[Trial]:
        return load_csv(self, Path(path), limit=limit)


def _decode(path: Path) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")  # a UTF-8 byte-order mark (Excel) is accepted and dropped
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line}: not UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start})") from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise DataError(f"{path}: line {line}: NUL byte (binary file?)")
    return text


def load_csv(study: Study, path: Path, limit: int | None = None) -> list[Trial]:
    """Read and validate a study CSV; the first problem found is raised as a DataError naming row and column.

    Row numbers count data rows from 1 (the header is row 0), as a spreadsheet user would read them off.
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    text = _decode(path)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{path}: empty file (no header)") from None
    except csv.Error as e:
        raise DataError(f"{path}: header: {e}") from None
    header = [h.strip() for h in header]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataError(f"{path}: header: duplicated column {dupes[0]!r}")
    missing = [c for c in study.required_columns if c not in header]
    if missing:
        raise DataError(
            f"{path}: header: missing column {missing[0]!r} for {study.name} "
            f"(required: {', '.join(study.required_columns)})"
        )
    trials: list[Trial] = []
    seen: dict[str, int] = {}
    rownum = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise DataError(f"{path}: row {rownum + 1} (line {reader.line_num}): broken CSV quoting: {e}") from None
        rownum += 1
        if not values or all(not v.strip() for v in values):
            raise DataError(f"{path}: row {rownum}: empty row")
        if len(values) != len(header):
            raise DataError(f"{path}: row {rownum}: {len(values)} fields, the header has {len(header)}")
        row = dict(zip(header, values, strict=True))
        for col in study.required_columns:
            if not row[col].strip():
                raise DataError(f"{path}: row {rownum}, column {col!r}: empty cell")
        problem = study.check_row(row)
        if problem:
            raise DataError(f"{path}: row {rownum}, {problem}")
        tid = study.trial_id(row, rownum)
        if tid in seen:
            keys = ", ".join(study.key_columns)
            raise DataError(f"{path}: row {rownum}: duplicated trial key {tid!r} ({keys}), first at row {seen[tid]}")
        seen[tid] = rownum
        row["trial_id"] = tid
        trials.append(row)
        if limit is not None and len(trials) >= limit:
            break
    if not trials:
        raise DataError(f"{path}: no data rows")
    return trials
