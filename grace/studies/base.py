"""What every study provides, and the strict CSV loader shared by all studies.

Besides its columns and prompts, a study declares how its prompts may vary without changing what is asked:
its wordings (`PromptVariant`s per experiment, the first named "main", each with its own prompt version) and
its option lists that may be listed in any order (`permutable`: a list with a natural order, such as 0-3,
stays out). A prompt is built from a trial and a `Layout` (which wording; per permutable list, the order to
list it in); grace/studies/orders.py decides the orders (counterbalanced per trial and replicate).
"""

from __future__ import annotations

import csv
import io
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from grace.errors import DataError

if TYPE_CHECKING:  # the stages' plug-in contracts (they import the registry, so not at run time)
    from grace.compare.plugin import Comparison
    from grace.config import ExperimentConfig
    from grace.extract.plugin import Extraction
    from grace.report.plugin import ReportPart

Trial = dict[str, str]  # the CSV row as strings, plus "trial_id"
Messages = list[dict[str, str]]
MAIN = "main"  # every study's first wording: the prompt of studies without variants
# How a prompt lists a permutable option list: in the study's own order ("fixed"), in an order counterbalanced
# over a condition's trials ("balanced"), or (Exp 2) under every rotation of the list, scores averaged ("circular").
Ordering = str
ORDERINGS = ("fixed", "balanced", "circular")


@dataclass(frozen=True)
class Question:
    """One Exp 2 question: chat messages whose answer is one of `options` (the answer text itself), listed in
    the prompt in the order of `options` when `order_of` names the permutable list they come from."""

    name: str
    messages: Messages
    options: tuple[str, ...]
    order_of: str | None = None  # the study's permutable list (Study.permutable) this question lists; None: fixed


@dataclass(frozen=True)
class PromptVariant:
    """One wording of an experiment's prompt: the same facts, the same options, other words."""

    name: str
    version: str  # its prompt version (records add how the options were ordered, and +fold)
    description: str = ""


@dataclass(frozen=True)
class Layout:
    """What a prompt is built from besides the trial: its wording, and the order of each permutable option list
    (a list not named here is listed in the study's own order)."""

    variant: str = MAIN
    orders: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def order(self, name: str, options: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(self.orders.get(name, options))


AS_WRITTEN = Layout()  # the main wording, every list in the study's own order (the prompts of before variants)


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
    # Option lists that may be listed in any order, by name -> the options in the study's own order. The name is
    # also the Exp 2 question that lists them and the extracted field that answers them (position bias).
    permutable: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)  # a dict: not hashed
    exp1_variants: tuple[PromptVariant, ...] = ()  # the wordings, "main" first; () : one, at prompt_version
    exp2_variants: tuple[PromptVariant, ...] = ()  # ... at exp2_prompt_version

    def __post_init__(self) -> None:
        for exp in ("exp1", "exp2"):
            names = [v.name for v in self.variants(exp)]
            if names[0] != MAIN or len(set(names)) != len(names):
                raise ValueError(f"study {self.name}: {exp} variants {names} must be unique, {MAIN!r} first")

    @abstractmethod
    def check_row(self, row: Trial) -> str | None:
        """A message naming the column if the row's values are invalid, else None."""

    @abstractmethod
    def exp1_messages(self, trial: Trial, layout: Layout = AS_WRITTEN) -> Messages:
        """The chat messages of the Experiment 1 question, in the layout's wording and option orders."""

    @abstractmethod
    def exp2_questions(self, trial: Trial, layout: Layout = AS_WRITTEN) -> list[Question]:
        """The Experiment 2 questions, each ending where the answer begins, in the layout's wording and orders."""

    def variants(self, experiment: str) -> tuple[PromptVariant, ...]:
        """The wordings of an experiment's prompt, "main" first."""
        declared = self.exp1_variants if experiment == "exp1" else self.exp2_variants
        base = self.prompt_version if experiment == "exp1" else self.exp2_prompt_version
        return declared or (PromptVariant(MAIN, base, "the study's one wording"),)

    def variant(self, experiment: str, name: str) -> PromptVariant:
        for v in self.variants(experiment):
            if v.name == name:
                return v
        known = ", ".join(v.name for v in self.variants(experiment))
        raise ValueError(f"study {self.name} has no {experiment} prompt variant {name!r} (known: {known})")

    def chosen_variants(self, exp: ExperimentConfig) -> tuple[str, ...]:
        """The wordings an experiment's config runs (ConfigError for a name the study does not know)."""
        return exp.chosen_variants(tuple(v.name for v in self.variants(exp.experiment)))

    def stage_rows(self, exp: ExperimentConfig, trials: int) -> int:
        """Records a stage of `trials` trials writes: trial x replicate (Exp 1) x prompt variant."""
        reps = exp.sampling.replications if exp.experiment == "exp1" else 1
        return trials * reps * len(self.chosen_variants(exp))

    def version_of(self, experiment: str, variant: str, ordering: Ordering) -> str:
        """The prompt version of what a record sent: the variant's, marked with how its options were ordered
        ("+balanced", "+circular"; nothing when fixed, or when the study has no permutable list)."""
        version = self.variant(experiment, variant).version
        return version if ordering == "fixed" or not self.permutable else f"{version}+{ordering}"

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
