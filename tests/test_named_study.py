"""A named study's run folder, without Prefect: its name, the same-plan guard, 'nothing left to do'."""

from __future__ import annotations

from pathlib import Path

import pytest

from grace.config import Config
from grace.errors import UserInputError
from grace.named_study import check_same_plan, nothing_left, remaining_models, study_folder
from grace.pipeline import plan_key

KEY = plan_key(studies=["study1"], experiments=["exp1"], sample=True, limit=3, max_tokens=8, profile="local")
PARAMS = {"models": ["toy", "smollm2"], **KEY}


@pytest.mark.parametrize("bad", ["", "a b", "../up", "x/y", ".hidden", "é"])
def test_study_id_must_be_a_plain_folder_name(bad: str, tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="study_id"):
        study_folder(tmp_path, bad)


def test_folder_is_out_slash_name(tmp_path: Path) -> None:
    assert study_folder(tmp_path, "2026-12-main").root == (tmp_path / "2026-12-main").resolve()


def test_completed_study_is_resumed_not_refused_and_nothing_left_only_when_every_model_is_done(
    cfg: Config, tmp_path: Path
) -> None:
    run = study_folder(tmp_path, "s")
    assert not nothing_left(run, PARAMS["models"], KEY)  # a new folder
    run.begin(cfg, PARAMS)
    run.mark_model_done("toy", KEY, [])
    assert remaining_models(run, PARAMS["models"], KEY) == ["smollm2"]
    run.end("failed")
    assert not nothing_left(run, PARAMS["models"], KEY)
    run.begin(cfg, PARAMS, resume=True)
    run.mark_model_done("smollm2", KEY, [])
    assert not nothing_left(run, PARAMS["models"], KEY), "still running: the report has not been written"
    run.end("completed")
    assert nothing_left(run, PARAMS["models"], KEY)
    other = {**KEY, "max_tokens": 16}
    assert not nothing_left(run, PARAMS["models"], other), "done.json of another plan does not count"
    with pytest.raises(UserInputError, match="completed run"):
        run.begin(cfg, PARAMS)  # an unnamed run still refuses a completed folder
    run.begin(cfg, {**PARAMS, "models": ["toy", "smollm2", "gemma2-2b"]}, resume=True)  # a model added
    assert run.read()["status"] == "running" and run.read()["attempts"] == 3


def test_a_different_plan_under_the_same_name_is_refused_in_one_line(cfg: Config, tmp_path: Path) -> None:
    run = study_folder(tmp_path, "s")
    check_same_plan(run, "s", PARAMS)  # nothing stored yet
    run.begin(cfg, PARAMS)
    check_same_plan(run, "s", {**PARAMS, "models": ["toy"]})  # models may change (one added, one dropped)
    with pytest.raises(UserInputError) as e:
        check_same_plan(run, "s", {**PARAMS, "sample": False, "limit": None})
    msg = str(e.value)
    assert "\n" not in msg and "run.json" in msg
    assert "sample=True, limit=3" in msg and "sample=False, limit=None" in msg
