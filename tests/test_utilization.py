"""How busy a stage kept its server, from vLLM's /metrics: the parser on pages the real vLLM 0.32 CPU server
wrote (tests/fixtures/vllm-metrics/, captured here: idle, mid-load, after), the arithmetic, the report's
warning, and on the real server a stage throttled to one request at a time flagged while a full one is not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grace.config import Config, UtilizationConfig
from grace.pipeline import run_stage, stage_summary
from grace.records import Utilization
from grace.report.checks import run_checks
from grace.report.load import load_study
from grace.serving import Endpoint, ExternalServer, ManagedServer
from grace.serving.metrics import Snapshot, parse_metrics, summarize
from grace.studies.registry import get_study
from grace.utilization import read_utilization, record_utilization
from tests.support.lanes import STARTS

PAGES = Path(__file__).parent / "fixtures" / "vllm-metrics"


def page(name: str) -> str:
    return (PAGES / name).read_text()


def test_real_vllm_pages_parse() -> None:
    idle, busy, after = (parse_metrics(page(f"{n}.txt"), t) for t, n in enumerate(("idle", "busy", "after")))
    assert idle is not None and busy is not None and after is not None
    assert idle.running == 0 and busy.running > 0, "mid-load the server runs requests"
    assert 0 < busy.kv_usage < 1, "kv_cache_usage_perc is a fraction"
    assert after.generation_tokens > busy.generation_tokens > idle.generation_tokens
    assert after.request_s > idle.request_s and after.steps > busy.steps > idle.steps
    assert after.prompt_tokens > idle.prompt_tokens and after.queue_s >= idle.queue_s


def test_not_a_vllm_page() -> None:
    assert parse_metrics("# HELP up whether\n# TYPE up gauge\nup 1\n") is None
    with pytest.raises(ValueError):
        parse_metrics("<html>not prometheus</html>")


def snap(t: float, **kw: float) -> Snapshot:
    return Snapshot(t=t, **kw)


def test_littles_law_busy_share_and_kv() -> None:
    # 10 s; requests ran 640 s in all -> 64 running on average of 128 slots; tokens 2000 over 10 s
    snaps = [snap(0, request_s=100, generation_tokens=1000, steps=5),
             snap(5, running=64, kv_usage=0.5, request_s=300, generation_tokens=2000, steps=50),
             snap(10, request_s=740, queue_s=20, generation_tokens=3000, prompt_tokens=500, steps=90)]
    u = summarize(snaps, batch_slots=128, concurrency=128, rows=500)
    assert u is not None
    assert (u.running_mean, u.busy_share, u.waiting_mean) == (64.0, 0.5, 2.0)
    assert (u.generation_tokens_per_s, u.prompt_tokens_per_s) == (200.0, 50.0)
    assert (u.kv_cache_mean, u.kv_cache_max, u.active_s, u.low) == (0.5, 0.5, 10.0, False)


def test_restart_counters_from_zero_and_too_few_readings() -> None:
    snaps = [snap(0, request_s=500, steps=10), snap(10, request_s=600, steps=20), snap(20, request_s=40, steps=3)]
    u = summarize(snaps, batch_slots=10)
    assert u is not None and u.running_mean == pytest.approx((100 + 40) / 20)
    assert summarize(snaps[:1], batch_slots=10) is None


@pytest.mark.parametrize("kw, cause", [
    ({"rows": 10, "concurrency": 128}, "only 10 requests for 128 batch slots"),
    ({"rows": 500, "concurrency": 1}, "at most 1 requests in flight for 128 batch slots"),
    ({"rows": 24, "concurrency": 1}, "at most 1 requests in flight for 128 batch slots"),
    ({"rows": 24, "concurrency": 64}, "only 24 requests for 128 batch slots"),
    ({"rows": 500, "concurrency": 128, "idle": True}, "no request was running 80% of the stage"),
    ({"rows": 500, "concurrency": 128, "kv": True}, "requests waited for KV-cache space"),
    ({"rows": 500, "concurrency": 16, "queued": True}, "requests waited for the server's scheduler (3.0 waiting"),
    ({"rows": 500, "concurrency": 128}, "requests ended faster than the client sent new ones"),
])
def test_low_utilization_names_a_likely_cause(kw: dict, cause: str) -> None:
    idle, kv, queued = kw.pop("idle", False), kw.pop("kv", False), kw.pop("queued", False)
    steps = [0, 1, 1, 1, 1, 1] if idle else [0, 1, 2, 3, 4, 5]
    snaps = [snap(t, request_s=2.0 * t, steps=s, kv_usage=0.95 if kv else 0.1,
                  queue_s=3.0 * t if kv or queued else 0)
             for t, s in enumerate(steps)]
    u = summarize(snaps, batch_slots=128, min_busy_share=0.4, **kw)
    assert u is not None and u.low and u.busy_share == pytest.approx(2 / 128, abs=1e-4)
    assert u.cause is not None and cause in u.cause, u.cause


def test_report_warns_about_a_low_stage(cfg: Config, tmp_path: Path) -> None:
    stage = tmp_path / "toy" / "study2"
    stage.mkdir(parents=True)
    (stage / "exp1.jsonl").write_text("")
    low = summarize([snap(0), snap(10, request_s=10, steps=9)], batch_slots=128, concurrency=1, rows=2000)
    ok = summarize([snap(0), snap(10, request_s=1000, steps=9)], batch_slots=128, concurrency=128, rows=2000)
    assert low is not None and ok is not None
    record_utilization(stage, "exp1", ok)
    record_utilization(stage, "exp1", low)  # a rerun: the latest reading counts
    record_utilization(stage, "exp2", ok)
    with (stage / "utilization.jsonl").open("a") as f:
        f.write('{"torn')
    assert read_utilization(stage) == {"exp1": low, "exp2": ok}
    checks = run_checks(load_study("toy", get_study("study2"), stage), set())
    busy = {c.experiment: c for c in checks.checks if c.name == "server busy"}
    assert not busy["exp1"].passed and not busy["exp1"].fatal and "at most 1 requests in flight" in busy["exp1"].detail
    assert busy["exp2"].passed
    assert checks.metrics["utilization"]["exp1"]["low"] is True


# -- on the real vLLM server -----------------------------------------------------------------------------------

def _stage(cfg: Config, toy_server: Endpoint, out: Path, concurrency: int, rows: int,
           min_busy_share: float) -> Utilization:
    study = get_study("study2")
    trials = study.load(cfg.study_file("study2", sample=False), limit=rows)
    exp = cfg.experiment("study2", "exp1")
    exp = exp.model_copy(update={"sampling": exp.sampling.model_copy(update={"max_tokens": 24}),
                                 "concurrency": concurrency})
    toy = cfg.model("toy")
    slots = toy.profile("local").batch_slots  # what backend_factory gives an --endpoint run of the model
    with ManagedServer(lambda: ExternalServer(toy_server.base_url, toy, batch_slots=slots, profile="local")) as server:
        result = run_stage(server, toy, study, trials, exp, out,
                           utilization=UtilizationConfig(sample_every_s=0.5, min_busy_share=min_busy_share))
    assert result.utilization is not None
    summary = stage_summary("toy", result)
    assert summary["busy_share"] == result.utilization.busy_share
    assert read_utilization(out)["exp1"] == result.utilization
    json.dumps(summary)  # run.json and done.json take it as it is
    return result.utilization


@pytest.mark.server
@pytest.mark.xdist_group(STARTS)  # not in the TOY lane: it measures load, so it runs late, alone on the cores
def test_throttled_client_is_flagged_and_a_full_batch_is_not(cfg: Config, toy_server: Endpoint,
                                                             tmp_path: Path) -> None:
    # The cluster's rule is 40% of a GPU's batch slots. This CPU server shares 2 cores with the other xdist worker and
    # its own API process is the bound: under a full client it held 72% of its 128 slots on idle cores, 38% in one CI
    # run, 19-21% beside one busy core and 12% beside two (measured here); a throttled client holds 0.6%. The bar
    # here sits between the two: 10%.
    bar = 0.1
    one = _stage(cfg, toy_server, tmp_path / "one", concurrency=1, rows=24, min_busy_share=bar)
    full = _stage(cfg, toy_server, tmp_path / "full", concurrency=128, rows=384, min_busy_share=bar)
    print(f"UTILIZATION one at a time: {one.model_dump()}\nUTILIZATION 128 in flight: {full.model_dump()}")
    assert one.batch_slots == full.batch_slots == 128
    assert 0.5 <= one.running_mean <= 1.05, "one request in flight, running nearly all the time"
    assert one.low and one.cause is not None and "at most 1 requests in flight for 128 batch slots" in one.cause
    assert one.samples >= 3 and one.active_s >= 0.8 * one.wall_s, "the server was never idle, only underused"
    assert full.running_mean > 10 * one.running_mean
    assert full.busy_share is not None and full.busy_share >= bar and not full.low, full
    # Batching yields more tokens/s than one at a time. Not a speed measure (benchmarks/ do those): the other xdist
    # worker shares the 2 cores, and one CI run measured 2.85x there, an earlier one over 3x, so the bar is 1.5x.
    assert full.generation_tokens_per_s > 1.5 * one.generation_tokens_per_s
    assert full.kv_cache_max is not None and full.kv_cache_max > 0
