"""The run's verdict in one line: per model and study, fit or not fit and the first reason.

Read from the data-quality report (report.json) so the flow run's state message, the run summary and the report
say the same thing; a model stopped at its preflight is named with the preflight's reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Verdict:
    model: str
    study: str  # "all" for a model that never got past its preflight
    fit: bool
    reason: str = ""

    def line(self) -> str:
        where = f"{self.model}/{self.study}" if self.study != "all" else self.model
        if self.fit:
            return f"{where} fit"
        return f"{where} not fit: {self.reason}" if self.reason else f"{where} not fit"


def verdicts(report: dict[str, Any]) -> list[Verdict]:
    out = [Verdict(m, "all", False, f"stopped at preflight ({pf.get('reason') or 'failed'})")
           for m, pf in sorted((report.get("preflight") or {}).items()) if not pf.get("passed")]
    for model, studies in (report.get("models") or {}).items():
        for study, r in studies.items():
            reasons = r.get("reasons") or []
            out.append(Verdict(model, study, bool(r.get("fit")), reasons[0] if reasons else ""))
    return out


def read_verdicts(run_dir: Path) -> list[Verdict]:
    path = Path(run_dir) / "report" / "report.json"
    return verdicts(json.loads(path.read_text(encoding="utf-8"))) if path.exists() else []


def verdict_message(vs: list[Verdict], limit: int = 900) -> str:
    """Not-fit verdicts first (what a reader must see), then the fit ones; cut to `limit` characters."""
    if not vs:
        return "no verdict: nothing was checked"
    ordered = [v for v in vs if not v.fit] + [v for v in vs if v.fit]
    text = "; ".join(v.line() for v in ordered)
    return text if len(text) <= limit else text[: limit - 1] + "…"
