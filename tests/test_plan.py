"""Unit tests of the GPU-hour arithmetic in grace.gpu_hours (pure: no server, no config)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grace.gpu_hours import (
    Measured,
    StudyLoad,
    actual_rows,
    estimate_row,
    exp1_tokens,
    exp2_tokens,
    gpu_hours,
    load_with,
    measure_run,
    planned_hours,
    pooled,
    study_tokens,
)

LOAD = StudyLoad("s", trials=100, replications=2, prompt_tokens=200, completion_tokens=50, exp2_questions=3,
                 exp2_reads=5)


def test_exp1_tokens_weights_prompt_and_counts_replications() -> None:
    assert exp1_tokens(LOAD, prefill_weight=0.1) == pytest.approx(2 * (50 + 20))
    assert exp1_tokens(LOAD, prefill_weight=0.0) == 100


def test_exp2_tokens_one_output_token_per_request_one_prefill_per_question() -> None:
    assert exp2_tokens(LOAD, prefill_weight=0.1) == pytest.approx(5 + 0.1 * 3 * 200)


def test_study_tokens_sums_chosen_experiments_over_trials() -> None:
    assert study_tokens(LOAD, ["exp1"], 0.1) == pytest.approx(100 * 140)
    assert study_tokens(LOAD, ["exp2"], 0.1) == pytest.approx(100 * 65)
    assert study_tokens(LOAD, ["exp1", "exp2"], 0.1) == pytest.approx(100 * 205)


def test_planned_hours_adds_startup_and_rejects_zero_throughput() -> None:
    assert planned_hours(3_600_000, 1000, startup_s=0) == pytest.approx(1.0)
    assert planned_hours(3_600_000, 1000, startup_s=1800) == pytest.approx(1.5)
    with pytest.raises(ValueError):
        planned_hours(1, 0)


def test_gpu_hours_scale_with_gpu_count_and_cpu_counts_as_one() -> None:
    assert gpu_hours(2.0, 4) == 8.0
    assert gpu_hours(2.0, 0) == 2.0


def test_plan_row_without_throughput_has_no_hours() -> None:
    row = estimate_row("m", "a100", 2, None, [LOAD], startup_s=0)
    assert row.hours is None and row.gpu_hours is None
    row = estimate_row("m", "a100", 2, 205 * 100 / 3600, [LOAD], prefill_weight=0.1, startup_s=0)
    assert row.hours == pytest.approx(1.0) and row.gpu_hours == pytest.approx(2.0)


def test_load_with_replaces_only_measured_figures() -> None:
    m = Measured(prompt_tokens=None, completion_tokens=10, exp2_questions=None, exp2_reads=7, exp1_n=4, exp2_n=4)
    got = load_with(LOAD, m, "measured")
    assert (got.prompt_tokens, got.completion_tokens, got.exp2_questions, got.exp2_reads) == (200, 10, 3, 7)
    assert got.source == "measured" and got.trials == 100
    assert load_with(LOAD, None, "x") is LOAD


def test_pooled_weights_by_record_count() -> None:
    a = Measured(100, 10, 1, 1, exp1_n=1, exp2_n=1)
    b = Measured(200, 40, 3, 5, exp1_n=3, exp2_n=1)
    got = pooled({"a": {"s": a}, "b": {"s": b}}, "s")
    assert got is not None
    assert got.prompt_tokens == pytest.approx(175) and got.completion_tokens == pytest.approx(32.5)
    assert got.exp2_reads == pytest.approx(3)
    assert pooled({"a": {"s": a}}, "other") is None


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"truncated')


def test_measure_and_actual_from_a_run_folder(tmp_path: Path) -> None:
    stage = tmp_path / "m1" / "study1"
    _write(stage / "exp1.jsonl", [
        {"trial_id": "a", "prompt_tokens": 100, "completion_tokens": 30, "status": "ok"},
        {"trial_id": "b", "prompt_tokens": 120, "completion_tokens": 50, "status": "truncated"},
    ])
    _write(stage / "exp2.jsonl", [{"trial_id": "a", "status": "ok", "requests": 3, "questions": {"q": {}, "r": {}}},
                                  {"trial_id": "b", "status": "error", "requests": 9}])
    (tmp_path / "m1" / "done.json").write_text(json.dumps({"stages": [{"wall_s": 30}, {"wall_s": 6}]}))
    (tmp_path / "run.json").write_text(json.dumps({
        "params": {"profile": "a100"},
        "config": {"models": {"models": {"m1": {"profiles": {"a100": {"gpu_count": 2}}}}}},
    }))
    m = measure_run(tmp_path)["m1"]["study1"]
    assert m.prompt_tokens == 110 and m.completion_tokens == 40
    assert m.exp2_reads == 3 and m.exp2_questions == 2  # only ok scoring records
    (row,) = actual_rows(tmp_path)
    assert (row.model, row.profile, row.gpu_count, row.trials) == ("m1", "a100", 2, 2)
    assert row.stage_s == 36 and row.output_tokens == 80
    assert row.gpu_hours == pytest.approx(36 / 3600 * 2)
    assert row.tokens_per_s == pytest.approx(80 / 36)
