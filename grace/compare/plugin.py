"""What a study gives the human comparison: its human data files, the comparison itself, its ranking rows, its
sections of compare.md and its figures.

The comparison (report.py, human.py) asks each study's `Comparison`, in `order`; a study without one is left out
of the comparison with a note.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # human.py and report.py ask this module, so their types are for the annotations only
    from grace.compare.human import Table
    from grace.compare.outputs import StudyOutputs
    from grace.compare.schema import Difference, RankedRow, Reference
    from grace.studies.base import Study


class Comparison(ABC):
    """A study's comparison with published (or the lab's own) human data."""

    order: int = 100  # studies are ranked and shown in this order, lowest first
    measures: tuple[str, ...] = ()  # the RankedRow measures its rows fill: "js", "r", "findings"
    primary: str = ""  # the measure that ranks its models (ties: grace/compare/differences.py); "" no groups
    legend: str = ""  # what its measures mean, a sentence or two for compare.md's head
    kinds: dict[str, frozenset[str]] = {}  # human-file kind -> the header columns that identify it
    formats: tuple[str, ...] = ()  # those headers in words, for the message about a file of no known kind

    def default_files(self, folder: Path) -> list[Path]:
        """The shipped human data (in data/human/), read before the user's files."""
        return []

    def empty_human(self, folder: Path) -> Any:
        """The human data before any file is read (None: none until a file of its kinds is read)."""
        return None

    @abstractmethod
    def read_human(self, kind: str, table: Table, current: Any) -> Any:
        """The human data with this file (of one of `kinds`) read in, replacing the part it provides."""

    def refuse_header(self, table: Table) -> None:
        """Raise a DataError naming what is missing when the header nearly is one of its kinds."""
        return None

    def sources(self, human: Any) -> dict[str, str]:
        """What the human data was read from, by name, for the report's head."""
        return {}

    @abstractmethod
    def compare(self, out: StudyOutputs, human: Any, alpha: float, n_boot: int,
                rng: np.random.Generator) -> list[Any]:
        """One result (a pydantic model of the study's) per source, exp2 and exp1, of one model's outputs."""

    def paired(self, outs: list[StudyOutputs], pairs: list[tuple[int, int]], human: Any, alpha: float,
               n_boot: int, rng: np.random.Generator) -> list[Difference]:
        """For each pair (i, j) of these models' outputs, the paired bootstrap differences outs[i] - outs[j] of
        its ranking measures, per source both have (the same trials resampled for both:
        grace/compare/differences.py)."""
        return []

    def references(self, human: Any) -> list[Reference]:
        """Human reference rows shown beside its ranked rows (e.g. the humans' noise ceiling)."""
        return []

    def notes(self, human: Any) -> list[str]:
        """What the report should say about the human data (e.g. why there is no noise ceiling)."""
        return []

    @abstractmethod
    def rank(self, results: list[Any], variant_of: Callable[[str], str | None]) -> list[RankedRow]:
        """The ranking's rows of this study's results, best first, numbered from 1."""

    def markdown(self, results: list[Any]) -> list[str]:
        """compare.md's sections on this study's results."""
        return []

    def plots(self, results: list[Any], human: Any, out_dir: Path) -> list[Path]:
        """Figures of this study's results against the humans, written in out_dir."""
        return []


def comparisons(studies: Iterable[Study]) -> list[tuple[Study, Comparison]]:
    """Each of these studies that has a comparison, with it, in comparison order."""
    parts = [(s, s.comparison) for s in studies if s.comparison is not None]
    return sorted(parts, key=lambda p: p[1].order)
