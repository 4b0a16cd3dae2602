"""One stage's data-quality limits, checked as soon as the stage ends, and one model's verdict as soon as its
stages end: the report's own checks (grace.report.checks), so the stage's state, the model's state and the
report say the same thing.

A stage is checked against the trials it has (rows lost are the report's concern, across models); a breach
is a failed fatal check: too many failed requests or replies cut by max_tokens (Exp 1), invalid probabilities
or too little option mass (Exp 2), too few replies fully read (extraction).
"""

from __future__ import annotations

from pathlib import Path

from grace.config import ModelConfig
from grace.report.checks import (
    MIN_OPTION_MASS,
    StudyChecks,
    check_exp1,
    check_exp2,
    check_extracted,
    run_checks,
)
from grace.report.load import FILES, StudyData, load_study
from grace.report.plugin import report_part
from grace.report.verdict import Verdict
from grace.studies.base import Study

EXPERIMENT_OF = {"exp1": "exp1", "exp2": "exp2", "extract": "extracted", "extracted": "extracted"}


def mass_limit(model: ModelConfig | None) -> float:
    """The model's option-mass limit: its config's `checks.min_option_mass`, else Grace's default."""
    if model is not None and model.checks.min_option_mass is not None:
        return model.checks.min_option_mass
    return MIN_OPTION_MASS


def stage_breaches(study_dir: Path, study: Study, experiment: str, min_option_mass: float = MIN_OPTION_MASS
                   ) -> list[str]:
    """The failed fatal checks of one stage (`exp1`, `exp2`, `extract`) of one model x study folder, each as
    "<experiment>: <detail>"; empty when the stage is within every limit (or wrote no file)."""
    exp = EXPERIMENT_OF[experiment]
    study_dir = Path(study_dir)
    if not (study_dir / FILES[exp][0]).exists():
        return []
    data = load_study(study_dir.parent.name, study, study_dir)
    sc = StudyChecks(data.model, study.name)
    own = set(data.records.get(exp, {}))
    if exp == "exp1":
        check_exp1(sc, data, own)
    elif exp == "exp2":
        check_exp2(sc, data, own, min_option_mass)
    else:
        check_extracted(sc, data, own, report_part(study))
    return sc.reasons


def model_verdicts(model_dir: Path, studies: list[Study], min_option_mass: float = MIN_OPTION_MASS,
                   extraction_pending: bool = False) -> list[Verdict]:
    """Fit or not per study of one model's folder, as the report will judge it; with `extraction_pending`
    (a separate extraction model reads the replies later) the missing extraction is not held against it."""
    out = []
    for study in studies:
        d = Path(model_dir) / study.name
        if not any((d / name).exists() for name, _ in FILES.values()):
            continue
        data: StudyData = load_study(Path(model_dir).name, study, d)
        expected = {r.trial_id for exp in ("exp1", "exp2") for r in data.records.get(exp, {}).values()}
        sc = run_checks(data, expected, min_option_mass)
        if extraction_pending:
            sc.checks = [c for c in sc.checks if not (c.experiment == "extracted" and c.name == "present")]
        out.append(Verdict(Path(model_dir).name, study.name, sc.fit, sc.reasons[0] if sc.reasons else ""))
    return out
