"""Study 1's human data: the published findings (pairwise comparisons of bets by condition) and the
knowledgeability means by access (Goodman & Stuhlmüller 2013), as shipped in data/human/ or a user's file.

- findings:         observe, access, state_a, state_b, humans (yes/no), [note];
- knowledgeability: access, mean, [sd] (mean bet out of 100 that the speaker knows).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from grace.compare.human import Table, number, where, whole_number
from grace.errors import DataError

KINDS = {
    "study1-findings": frozenset({"observe", "access", "state_a", "state_b", "humans"}),
    "study1-knowledgeability": frozenset({"access", "mean"}),
}
FORMATS = ("observe,access,state_a,state_b,humans", "access,mean,sd")


@dataclass(frozen=True)
class Finding:
    """A published pairwise comparison: in condition (access, observe), bets on state_a > bets on state_b?"""

    observe: int
    access: int
    state_a: int
    state_b: int
    humans: bool
    note: str = ""

    @property
    def label(self) -> str:
        return f"observe {self.observe}, access {self.access}: state {self.state_a} > state {self.state_b}"


@dataclass
class Study1Human:
    source: str
    findings: list[Finding]
    knowledgeability: dict[int, tuple[float, float | None]]  # access -> (mean out of 100, sd)
    knowledge_source: str = ""


def _findings(t: Table) -> list[Finding]:
    out = []
    for line, row in t.rows:
        access = whole_number(t, line, "access", row["access"], range(1, 4))
        observe = whole_number(t, line, "observe", row["observe"], range(0, access + 1))
        a = whole_number(t, line, "state_a", row["state_a"], range(0, 4))
        b = whole_number(t, line, "state_b", row["state_b"], range(0, 4))
        if a == b:
            raise DataError(f"{t.path}: line {line}: state_a and state_b are both {a}")
        h = row["humans"].lower()
        if h not in {"yes", "no"}:
            raise DataError(f"{where(t, line, 'humans')}: {row['humans']!r} is not yes or no")
        out.append(Finding(observe, access, a, b, h == "yes", row.get("note", "")))
    return out


def _knowledgeability(t: Table) -> dict[int, tuple[float, float | None]]:
    out: dict[int, tuple[float, float | None]] = {}
    for line, row in t.rows:
        access = whole_number(t, line, "access", row["access"], range(1, 4))
        if access in out:
            raise DataError(f"{t.path}: line {line}: access {access} appears twice")
        sd = number(t, line, "sd", row["sd"], 0, 100) if row.get("sd") else None
        out[access] = (number(t, line, "mean", row["mean"], 0, 100), sd)
    return out


def empty(folder: Path) -> Study1Human:
    """No findings or means yet; the sources name the shipped files (read next)."""
    return Study1Human(str(folder / "study1_findings.csv"), [], {}, str(folder / "study1_knowledgeability.csv"))


def default_files(folder: Path) -> list[Path]:
    return [folder / "study1_findings.csv", folder / "study1_knowledgeability.csv"]


def read(kind: str, t: Table, current: Study1Human) -> Study1Human:
    """`current` with this file's part (findings or knowledgeability) replaced."""
    if kind == "study1-findings":
        current.findings, current.source = _findings(t), str(t.path)
    else:
        current.knowledgeability, current.knowledge_source = _knowledgeability(t), str(t.path)
    return current
