"""Numbers, intervals, tables and places written for a reader scanning the Prefect UI (no Prefect here).

Three significant digits for measured values, intervals as `[a, b]`, a sentence instead of an empty table, and
the run folder named in the form that is true where the reader is (the checkout locally, the results PVC on
the cluster) - never as a `file://` link, which a browser refuses and which names the worker's disk.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grace.paths import project_root

DIGITS = 3
MISSING = "—"


def sig(x: float | int | str | None, digits: int = DIGITS) -> str:
    """A number rounded to `digits` significant digits, written without an exponent where that stays short:
    0.4397 -> "0.440", 27.53 -> "27.5", 12345.6 -> "12300", 3 -> "3", None / NaN -> "—"."""
    if x is None or isinstance(x, bool | str):
        return MISSING if x is None else str(x)
    if isinstance(x, int):
        return str(x)
    if not math.isfinite(x):
        return MISSING if math.isnan(x) else str(x)
    if x == 0:
        return "0"
    r = float(f"{x:.{digits}g}")
    exp = math.floor(math.log10(abs(r)))
    if -4 <= exp < 7:
        return f"{r:.{max(digits - 1 - exp, 0)}f}"
    return f"{r:.{digits - 1}e}"


def percent(share: float | None, digits: int = DIGITS) -> str:
    """A share 0..1 as a percentage with `digits` significant digits: 0.1234 -> "12.3%"; 1.0 -> "100%"."""
    return MISSING if share is None else f"{sig(100 * share, digits)}%"


def interval(ci: Sequence[float | None] | None, digits: int = DIGITS) -> str:
    """(lo, hi) as "[lo, hi]" with `digits` significant digits; None (no interval) as ""."""
    if ci is None or len(ci) != 2:
        return ""
    return f"[{sig(ci[0], digits)}, {sig(ci[1], digits)}]"


def cell(v: Any) -> str:
    """Any value as the text of a table cell: floats rounded, pairs as intervals, None as a dash."""
    if isinstance(v, float | int) or v is None:
        return sig(v)
    if isinstance(v, tuple | list) and len(v) == 2 and all(isinstance(x, float | int) or x is None for x in v):
        return interval(v)
    if isinstance(v, Mapping):
        return ", ".join(f"{k} {cell(x)}" for k, x in v.items()) or MISSING
    return str(v)


def counts(v: Mapping[str, Any] | str | None) -> str:
    """A {status: count} mapping - or its JSON text, as stage summaries carry it - as "error 2, timeout 1"."""
    if isinstance(v, str):
        try:
            parsed = json.loads(v)
        except ValueError:
            return v
        return cell(parsed)
    return cell(v)


def readable_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Rows for a Prefect table artifact: every value written as `cell` writes it (the UI shows the text)."""
    return [{k: cell(v) for k, v in row.items()} for row in rows]


def mark(passed: bool, fatal: bool = True) -> str:
    """A check's result as it must stand out: ✓ pass, ✗ **FAIL** (fatal), ⚠ warn (not fatal). Text symbols,
    not emoji: they render in any font (a browser without an emoji font shows an emoji as an empty box)."""
    if passed:
        return "✓ pass"
    return "✗ **FAIL**" if fatal else "⚠ warn"


def fit_mark(fit: bool) -> str:
    """A verdict for a table cell: ✓ fit or ✗ **not fit**."""
    return "✓ fit" if fit else "✗ **not fit**"


def md_escape(text: str) -> str:
    """Text safe inside a Markdown table cell: no column or line breaks, and no `~` pair that GitHub-flavoured
    Markdown (both Prefect UIs) would strike through (`initial_answer~prior ... posterior~argmax`)."""
    return str(text).replace("|", "\\|").replace("~", "\\~").replace("\n", " ")


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]], empty: str) -> list[str]:
    """A Markdown table, or - when there are no rows - the sentence `empty` saying why there is nothing."""
    if not rows:
        return [f"_{empty}_"]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(md_escape(c if isinstance(c, str) else cell(c)) for c in r) + " |" for r in rows]
    return out


def shown_path(path: str | Path, root: Path | None = None) -> str:
    """A file's path as a reader should see it: relative to the checkout when inside it, else as it is."""
    p = Path(path)
    root = (root or project_root()).resolve()
    try:
        return str(p.resolve().relative_to(root))
    except (ValueError, OSError):
        return str(p)


@dataclass(frozen=True)
class Location:
    """Where a run folder lives, said so that it is true where the reader is."""

    where: str  # one Markdown line: "PVC `x`, folder `run/`" or "`results/run/` in the checkout"
    fetch: str  # the command that copies the files to one's own machine; "" where they are already on it
    on_cluster: bool
    folder: str = ""  # the run folder as a command's argument there (relative in the checkout)


def _cluster_names() -> tuple[str, str, str] | None:
    """(results PVC name as created, namespace, mount path) from config/cluster.yaml; None if unreadable."""
    from grace.errors import GraceError

    try:
        from grace.manifests.build import pvc_name
        from grace.manifests.settings import load_cluster_settings

        s = load_cluster_settings()
    except (GraceError, OSError, ImportError):
        return None
    return pvc_name(s, "results"), s.namespace, s.results_mount


def results_location(run_dir: Path, root: Path | None = None) -> Location:
    """The run folder: on the results PVC (inside a pod - KUBERNETES_SERVICE_HOST set - with the folder under
    the PVC's mount), in the checkout (a relative path), or elsewhere on the worker's machine (absolute)."""
    run_dir = Path(run_dir).resolve()
    names = _cluster_names()
    mount = Path(names[2] if names else "/results")
    if os.environ.get("KUBERNETES_SERVICE_HOST") and run_dir.is_relative_to(mount):
        pvc, ns = (f"`{names[0]}`", f"`{names[1]}`") if names else ("(results PVC)", "(the lab's)")
        return Location(where=f"PVC {pvc} (namespace {ns}), folder `{run_dir.relative_to(mount).as_posix()}/` "
                              f"(mounted at `{mount}` in the runner pods)",
                        fetch=f"grace archive --run-id {run_dir.name} --from-cluster", on_cluster=True)
    root = (root or project_root()).resolve()
    if run_dir.is_relative_to(root):
        rel = run_dir.relative_to(root).as_posix()
        return Location(where=f"`{rel}/` in the Grace checkout on the worker's machine", fetch="", on_cluster=False,
                        folder=rel)
    return Location(where=f"`{run_dir}` on the worker's machine", fetch="", on_cluster=False, folder=str(run_dir))
