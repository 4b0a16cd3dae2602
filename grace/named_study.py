"""A named study: one run folder, `<out>/<study_id>/`, that successive runs continue until it is done.

The nightly schedule starts the same named study every night: each run skips the models already finished
(their done.json) and the rows already answered (the checkpoints), continues the rest, and once everything is
done a run ends at once with nothing left to do. A run that asks for a different plan (other studies,
experiments, sample, limit, max_tokens or profile) under the same name is refused: it would mix results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grace.errors import UserInputError
from grace.run import RunFolder, safe_name

PLAN_FIELDS = ("studies", "experiments", "sample", "limit", "max_tokens", "profile")
NOTHING_LEFT = "nothing left to do"


def check_study_id(study_id: str) -> str:
    """The name is the folder's name, so it must be one already (no '/', spaces, '..')."""
    if not study_id or safe_name(study_id) != study_id or study_id.startswith("."):
        raise UserInputError(
            f"study_id {study_id!r}: use letters, digits, '.', '_' and '-' only (it names the run folder)"
        )
    return study_id


def study_folder(out: str | Path, study_id: str) -> RunFolder:
    return RunFolder((Path(out) / check_study_id(study_id)).resolve())


def check_same_plan(run: RunFolder, study_id: str, params: dict[str, Any]) -> None:
    """Refuse to continue a named study with another plan (one line naming the fields that differ)."""
    before = run.read().get("params") or {}
    changed = [f for f in PLAN_FIELDS if f in before and before[f] != params.get(f)]
    if changed:
        was = ", ".join(f"{f}={before[f]!r}" for f in changed)
        now = ", ".join(f"{f}={params.get(f)!r}" for f in changed)
        raise UserInputError(
            f"{run.run_json}: study {study_id!r} was started with {was}; this run asks {now}: "
            "use the same parameters to continue it, or another study_id"
        )


def remaining_models(run: RunFolder, models: list[str], key: dict[str, Any]) -> list[str]:
    """The models of this plan that have not finished every stage in this folder."""
    return [m for m in models if not run.model_done(m, key)]


def nothing_left(run: RunFolder, models: list[str], key: dict[str, Any]) -> bool:
    """True when the folder's last run completed (report and comparison included) and every model is done."""
    return run.read().get("status") == "completed" and not remaining_models(run, models, key)
