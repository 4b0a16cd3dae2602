"""Links into the trial viewer: a filter written in the page's address (`trials.html#model=m&study=s&finish=length`).

The viewer reads its filters from the part after `#`, so a link from a number in the report or the comparison
opens the trials behind that number. A value starting with `!` means "anything but" (`ext=!ok`: every reply
that was not fully read). Links in files of the run folder are relative (`../trials.html#...` from report/ and
compare/); in the Prefect UI they point at the viewer's web address when one serves the run (`grace view`),
and are left out when none does (a relative link there would lead nowhere).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote, urlencode

VIEWER = "trials.html"
VIEW_URL_ENV = "GRACE_VIEW_URL"  # where `grace view --root` serves (scripts/prefect-up.sh sets both for the worker)
VIEW_ROOT_ENV = "GRACE_VIEW_ROOT"
# The filter names the page understands (grace/view/assets/viewer.js reads the same names).
FILTERS = ("run", "model", "study", "phase", "cond", "variant", "exp1", "finish", "ext", "method", "exp2", "q")
# A check of the data-quality report (experiment, name) -> the trials behind it, beyond its model and study.
CHECK_FILTERS: dict[tuple[str, str], dict[str, str]] = {
    ("exp1", "truncation"): {"finish": "length"},
    ("exp1", "failed requests"): {"exp1": "error"},
    ("exp1", "row count"): {},
    ("exp2", "failed requests"): {"exp2": "!ok"},
    ("exp2", "option mass"): {"exp2": "ok", "sort": "mass"},
    ("exp2", "probabilities"): {"exp2": "ok"},
    ("extracted", "parse rate"): {"ext": "!ok"},
    ("extracted", "probabilities"): {"ext": "ok"},
    ("extracted", "present"): {},
    ("preflight", "extraction"): {"phase": "preflight", "ext": "!ok"},
    ("preflight", "exp1 length"): {"phase": "preflight", "finish": "length"},
    ("preflight", "exp1"): {"phase": "preflight", "exp1": "!ok"},
    ("preflight", "exp2"): {"phase": "preflight", "exp2": "!ok"},
}
_RELATIVE = re.compile(r"\]\(\.\./" + re.escape(VIEWER) + r"(#[^)\s]*)?\)")


def condition_label(condition: dict[str, str]) -> str:
    """A design cell as the viewer names it: "access 3, observe 1"."""
    return ", ".join(f"{k} {v}" for k, v in condition.items())


def fragment(**filters: str | None) -> str:
    """`#model=m&study=s...` for the given filters (None and empty ones left out); unknown names are refused."""
    unknown = set(filters) - set(FILTERS) - {"sort", "trial"}
    if unknown:
        raise ValueError(f"not a filter of the trial viewer: {sorted(unknown)}")
    kept = {k: v for k, v in filters.items() if v}
    return "#" + urlencode(kept, quote_via=quote) if kept else ""


def check_link(model: str, study: str, experiment: str, name: str, *, base: str = f"../{VIEWER}") -> str:
    """The viewer's address for the trials behind one check of one model x study."""
    extra = CHECK_FILTERS.get((experiment, name), {})
    scope = {} if extra.get("phase") == "preflight" else {"phase": "study"}
    return base + fragment(model=model, study=None if study == "all" else study, **scope, **extra)


def trials_link(base: str = f"../{VIEWER}", **filters: str | None) -> str:
    return base + fragment(**filters)


def localize(markdown: str, viewer_url: str | None) -> str:
    """Markdown of report/ or compare/ for the Prefect UI: its `](../trials.html#...)` links pointed at
    `viewer_url` (the run's trials.html as served), or turned into plain text when no viewer serves the run."""
    if viewer_url:
        return _RELATIVE.sub(lambda m: f"]({viewer_url}{m[1] or ''})", markdown)
    return re.sub(r"\[([^\]]*)\]\(\.\./" + re.escape(VIEWER) + r"(#[^)\s]*)?\)", r"\1", markdown)


def served_url(run_dir: Path) -> str | None:
    """The web address of the run's viewer when a `grace view --root ROOT` serves it: GRACE_VIEW_URL (its base
    address, e.g. http://127.0.0.1:4300) and GRACE_VIEW_ROOT (ROOT) are set, and the run lies under ROOT."""
    base, root = os.environ.get(VIEW_URL_ENV, "").strip(), os.environ.get(VIEW_ROOT_ENV, "").strip()
    if not base or not root:
        return None
    run_dir = Path(run_dir).resolve()
    root_path = Path(root).resolve()
    if not run_dir.is_relative_to(root_path) or run_dir == root_path:
        return None
    return f"{base.rstrip('/')}/{quote(run_dir.relative_to(root_path).as_posix())}/{VIEWER}"
