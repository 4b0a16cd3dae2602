"""Running R in the tests: Rscript with R's own message on failure, and grace.R on a run folder."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from grace.analysis.figures import Key, r_figures

RSCRIPT = shutil.which("Rscript") or "/usr/bin/Rscript"


def rscript(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Rscript, failing the test with R's own message (R is installed by scripts/setup.sh: no silent skip)."""
    assert Path(RSCRIPT).exists(), "Rscript not found: scripts/setup.sh installs R from Debian (r-base-core)"
    out = subprocess.run([RSCRIPT, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"Rscript {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out


def grace_r(run: Path) -> dict[Key, float]:
    """RUN/analysis/grace.R run as a script; its figures (grace_r_figures.csv beside it)."""
    rscript(str(run / "analysis" / "grace.R"))
    return r_figures(run / "analysis" / "grace_r_figures.csv")
