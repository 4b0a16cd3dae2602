"""The benchmarks' pure parts (no server): what they compare, how they judge targets, and that the
orchestration benchmark's two contenders are asked for the same work."""

from __future__ import annotations

import inspect
import re

import pandas as pd
import pytest

from benchmarks import block_size, orchestration, side_by_side
from benchmarks.common import COLUMNS, Report, Row, percentile, render
from benchmarks.direct_run import parser as direct_parser
from benchmarks.exp1 import _median
from benchmarks.runner import targets
from flows.grace_flow import grace
from grace.config import Config
from grace.params import FIELDS


def test_percentile_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0


@pytest.mark.parametrize("work", [orchestration.SAMPLE, orchestration.FULL])
def test_both_contenders_get_the_same_work(work: orchestration.Workload) -> None:
    flow_params = inspect.signature(grace.fn).parameters
    assert set(work.params()) <= set(flow_params)
    direct = direct_parser().parse_args(["--out", "x", "--run-id", "r", *work.flags()])
    params = work.params()
    assert direct.experiments == params["experiments"]
    assert (not direct.full) == params["sample"]
    assert direct.max_tokens == params.get("max_tokens")
    assert direct.no_extract_llm == (params.get("extract_llm") is False)
    assert direct.concurrency == params.get("concurrency")
    assert direct.studies == FIELDS["studies"].default
    assert params["preflight"] is False  # the direct runner has no preflight: the same work on both sides


def test_worker_poll_is_the_shipped_setting() -> None:
    from prefect.settings import get_current_settings

    assert orchestration.shipped_poll_s() == get_current_settings().worker.query_seconds == 2


def test_median_of_repeated_runs() -> None:
    rows = [Row("exp1", "toy", "grace c=32 (default)", tok_s=v) for v in (900.0, 700.0, 1000.0)]
    mid = _median(rows, "grace c=32 (default)")
    assert mid.tok_s == 900.0 and "median of 3 runs (out tok/s 900, 700, 1000)" in mid.note


def _overhead(label: str, share: float) -> Row:
    return Row("prefect", "toy", f"prefect overhead: {label}", value=share * 100, ratio=share)


def test_targets_judge_the_full_study_overhead_and_report_the_sample() -> None:
    rows = [
        Row("exp1", "toy", "grace c=32 (default)", ratio=0.95, vs="server limit"),
        Row("exp1", "toy", "grace default / sequential", ratio=9.5),
        _overhead(orchestration.SAMPLE.label, 0.2),
        _overhead(orchestration.FULL.label, 0.04),
    ]
    got = {t.name: t.met for t in targets(rows, ["toy"])}
    assert got["exp1 grace / server limit (out tok/s)"] is True
    assert got["exp1 grace / sequential loop"] is False
    assert got["prefect overhead share of wall time, full study"] is True
    sample = [k for k in got if "sample study" in k]
    assert len(sample) == 1 and got[sample[0]] is None  # reported, not judged
    rows[-1] = _overhead(orchestration.FULL.label, 0.06)
    assert {t.name: t.met for t in targets(rows, ["toy"])}["prefect overhead share of wall time, full study"] is False


def _cells(text: str, line: int) -> list[str]:
    """The cells of one line of the rendered table, cut at the columns the separator row (line 1) marks."""
    lines = text.splitlines()
    return [lines[line][a:b].strip() for a, b in (m.span() for m in re.finditer(r"-+", lines[1]))]


def test_render_marks_targets_and_empty_cells() -> None:
    rows = [Row("exp2", "toy", "grace server path", n=4, rps=2.5),
            Row("exp1", "toy", "grace c=32 (default)", ratio=0.95, vs="server limit"),
            Row("exp1", "toy", "grace default / sequential", ratio=9.5),
            _overhead(orchestration.SAMPLE.label, 0.2)]
    report = Report(rows=rows)
    report.targets = targets(report.rows, ["toy"])
    text = render(report)
    header = _cells(text, 0)
    assert header == [h for _, h in COLUMNS]
    cells = dict(zip(header, _cells(text, 2), strict=True))
    filled = {"bench": "exp2", "model": "toy", "contender": "grace server path", "n": "4", "req|trial/s": "2.50"}
    assert cells == {h: filled.get(h, "-") for h in header}, "an empty field prints as '-'"
    marks = dict((name, mark) for mark, name in re.findall(r"^  \[(MET |MISS|n/a )\] toy +(.+?): ", text, re.M))
    assert marks == {"exp1 grace / server limit (out tok/s)": "MET ", "exp1 grace / sequential loop": "MISS",
                     "prefect overhead share of wall time, sample study (mostly fixed cost; judged on the full "
                     "study)": "n/a "}, text


def test_direct_runner_composes_the_flows_building_blocks() -> None:
    """The baseline runs the flow's per-model steps from grace.pipeline, not a copy of the flow's loops: the same
    stages in the same order, the same server seed, the same extraction settings on the model's own server."""
    from benchmarks import direct_run
    from flows.grace_flow import model_run

    shared = ("backend_factory(", "plan.server_seed(cfg)", "own_server_extraction(extraction_settings(cfg",
              "plan.stage_jobs(cfg, run, ", "plan.extraction_jobs(cfg, run, ", "mark_model_done(")
    for fn in (model_run.fn, direct_run.main):
        src = inspect.getsource(fn)
        assert all(s in src for s in shared), [s for s in shared if s not in src]
        assert "for exp_name in" not in src and "for name in plan.studies" not in src, "a loop of its own"


def test_exp2_concurrency_ratios_are_against_the_shipped_setting(cfg: Config) -> None:
    from benchmarks.exp2_concurrency import LEVELS, label

    assert LEVELS[0] == cfg.experiment("study2", "exp2").concurrency  # the row every ratio is taken against
    assert None in LEVELS and label(None, 128) == "c=null (batch slots, 128)" and label(64, 128) == "c=64"


def test_block_size_difference_pairs_the_same_reads() -> None:
    rows = {"trial_id": ["t1", "t1", "t2"], "prompt_variant": ["main"] * 3, "question": ["q"] * 3,
            "option": ["a", "b", "a"], "logprob": [-1.0, -2.0, -0.5]}
    a = pd.DataFrame(rows)
    assert block_size.largest_difference(a, a.copy()) == 0.0
    shifted = a.assign(logprob=[-1.0, -2.25, -0.5])
    assert block_size.largest_difference(a, shifted) == 0.25
    assert block_size.largest_difference(a, a.iloc[:2]) == float("inf"), "a read missing on one side"
    assert block_size.largest_difference(a, pd.DataFrame()) is None


def test_side_by_side_judges_two_servers_at_once_not_one_alone() -> None:
    rows = [Row(side_by_side.BENCH, "toy", "alone, 1 thread", ratio=0.8),
            Row(side_by_side.BENCH, "toy", "2 at once, 1 thread", ratio=2.4)]
    got = [t for t in targets(rows, ["toy"]) if "two servers at once" in t.name]
    assert [(t.measured, t.met) for t in got] == [(2.4, True)], "alone is reported, only two at once is judged"
    rows[1].ratio = 0.9
    assert [t.met for t in targets(rows, ["toy"]) if "two servers at once" in t.name] == [False]
