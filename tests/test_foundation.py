"""Foundation: config, the studies' data and designs, prompts, the local server's lifecycle, Exp 1 on real models."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import psutil
import pytest

from grace.cli import main
from grace.config import Config
from grace.query import run_exp1
from grace.serving import Endpoint, LocalVLLMServer
from grace.studies.generate import STUDY1_COLUMNS, STUDY2_COLUMNS, study1_rows, study2_rows
from grace.studies.registry import get_study
from grace.studies.study2 import UTTERANCES, goal_label
from tests.conftest import ROOT


def read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_config_has_every_study_model_with_its_profiles(cfg: Config) -> None:
    names = set(cfg.models)
    assert {"smollm2", "toy", "gemma2-2b", "gemma2-9b", "gemma2-27b", "gemma2-27b-awq", "llama3.1-8b",
            "llama3-70b-awq", "gpt-oss-20b"} <= names
    assert cfg.model("local").name == "smollm2"
    gemma2 = [m for m in cfg.models.values() if m.family == "gemma2"]
    assert {"gemma2-2b", "gemma2-9b", "gemma2-27b", "gemma2-27b-awq"} <= {m.name for m in gemma2}
    for m in gemma2:
        assert all(p.dtype == "bfloat16" for p in m.profiles.values()), m.name
    big = cfg.model("llama3-70b-awq")
    assert (big.profile("a100").tensor_parallel_size, big.profile("rtx3090").tensor_parallel_size) == (2, 4)
    assert cfg.model("gemma2-27b-awq").profile("rtx3090").gpu_count == 2
    assert [e.key for e in cfg.experiments] == ["study1/exp1", "study2/exp1", "study1/exp2", "study2/exp2"]
    assert cfg.experiment("study1", "exp1").sampling.temperature == 0.7


def test_committed_data_is_what_the_generator_makes() -> None:
    s1, s2 = read(ROOT / "data/study1.csv"), read(ROOT / "data/study2.csv")
    assert list(s1[0]) == STUDY1_COLUMNS and list(s2[0]) == STUDY2_COLUMNS
    assert s1 == [{k: str(v) for k, v in r.items()} for r in study1_rows()]
    assert s2 == [{k: str(v) for k, v in r.items()} for r in study2_rows()]
    assert len(read(ROOT / "data/study1_sample.csv")) == 10 and len(read(ROOT / "data/study2_sample.csv")) == 10


def test_study1_design_each_condition_once_with_different_stories() -> None:
    rows = read(ROOT / "data/study1.csv")
    assert len(rows) == 300
    by_p: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        by_p[r["participant_id"]].append(r)
    assert len(by_p) == 50
    for trials in by_p.values():
        conds = {(t["access"], t["observe"]) for t in trials}
        assert conds == {("1", "1"), ("2", "1"), ("2", "2"), ("3", "1"), ("3", "2"), ("3", "3")}
        assert len({t["story_shortname"] for t in trials}) == 6
    assert {r["story_shortname"] for r in rows} == {"seeds", "lottery", "exams", "fruits", "phones", "letters"}
    assert all("almost always" in r["story_setup"] for r in rows)
    assert any("<br>" in r["story_setup"] for r in rows)
    r = next(r for r in rows if (r["access"], r["observe"]) == ("2", "1"))
    assert "looked at 2 of the 3" in r["speach"] and "One of the" in r["speach"]


def test_study2_design_each_goal_state_cell_once_per_participant() -> None:
    rows = read(ROOT / "data/study2.csv")
    assert len(rows) == 2424
    by_p: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        by_p[r["Participant_ID"]].append(r)
    assert len(by_p) == 202
    for trials in by_p.values():
        assert len({t["Domain"] for t in trials}) == 12
        assert len({(goal_label(t["Goal"]), t["State"]) for t in trials}) == 12
    assert Counter(goal_label(r["Goal"]) for r in rows) == {"informative": 808, "social": 808, "both": 808}
    assert all(r["SP_Name"] != r["LS_Name"] for r in rows)
    assert len({r["SP_Name"] for r in rows}) >= 45


def test_prompts_carry_the_trial_and_the_answer_format() -> None:
    s1, s2 = get_study("study1"), get_study("study2")
    t1 = s1.load(ROOT / "data/study1_sample.csv")[0]
    user = s1.exp1_messages(t1)[1]["content"]
    said = t1["speach"].split(": ", 1)[1]  # "Ravi says: I have looked ..." -> 'Then Ravi says: "I have looked ..."'
    assert "<br>" not in user and f'says: "{said}"' in user and t1["priorQ"] in user and t1["knowledgeQ"] in user
    assert "Initial Answer:" in user and "Probabilities: 0:" in user and "Knowledge:" in user
    t2 = s2.load(ROOT / "data/study2_sample.csv")[0]
    user2 = s2.exp1_messages(t2)[1]["content"]
    assert all(u in user2 for u in UTTERANCES) and t2["SP_Name"] in user2 and t2["LS_Name"] in user2
    assert "the listener" not in user2, "the goal names the listener"
    assert user2.count("out of 3") == 1 and f"{t2['SP_Name']}'s private rating was {t2['State']} out of 3." in user2
    assert "hearts" not in t2["Scenario"] + t2["Precontext"], "the project's stimuli state the state once (State)"
    assert t1["trial_id"] == f"study1-{t1['participant_id']}-{t1['story_shortname']}"
    assert s1.prompt_version and s2.prompt_version and s1.prompt_version != s2.prompt_version


def test_cli_errors_are_one_line_with_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "s1.csv"
    bad.write_text("story_setup,priorQ,speach\nA,B,C\n")
    assert main(["check-data", "--study", "study1", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "missing column 'speachQ'" in err and str(bad) in err
    assert main(["query", "--model", "nosuch", "--study", "study1", "--sample"]) == 2
    assert "unknown model 'nosuch'" in capsys.readouterr().err
    assert main(["check-config"]) == 0


def group_of(pid: int) -> list[psutil.Process]:
    """The processes of the process group `pid` leads (the server leads its own: start_new_session)."""
    out = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getpgid(p.pid) == pid and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except (ProcessLookupError, psutil.Error):
            continue
    return out


@pytest.mark.server
def test_local_server_is_gone_after_an_exception_and_after_ctrl_c(cfg: Config) -> None:
    """A started server left by an exception raised inside its block (a request the server refuses), then a start
    interrupted by Ctrl-C (a real SIGINT to this process) while it waits for vLLM: each time the whole process
    group is gone and so is the PID file. One full start; the second is stopped seconds after it is spawned."""
    server = LocalVLLMServer(cfg.model("toy"), run_id="pytest-teardown")
    with pytest.raises(httpx.HTTPStatusError, match="404"), server as ep:
        pids = [p.pid for p in group_of(server.proc.pid)]
        assert len(pids) >= 2, "the API server and its engine process"
        httpx.post(f"{ep.v1}/chat/completions", json={"model": "no-such-model", "messages": []},
                   timeout=60).raise_for_status()
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)
    assert not (ROOT / ".grace/run/servers" / f"{server.port}.json").exists()

    interrupted = LocalVLLMServer(cfg.model("toy"), run_id="pytest-teardown")
    seen: list[int] = []

    def ctrl_c() -> None:  # once vLLM is spawned and importing, long before it could be ready
        deadline = time.monotonic() + 60
        while (interrupted.proc is None or not group_of(interrupted.proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        group = group_of(interrupted.proc.pid) if interrupted.proc is not None else []
        if group:  # else no Ctrl-C at all: the test fails (DID NOT RAISE) instead of interrupting anything else
            seen.extend(p.pid for p in group)
            time.sleep(1)
            os.kill(os.getpid(), signal.SIGINT)

    # Python's own Ctrl-C handler, as in a terminal (a shell's background job starts with SIGINT ignored)
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    threading.Thread(target=ctrl_c, daemon=True).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            interrupted.start()
        assert seen and interrupted.proc is not None
        left = group_of(interrupted.proc.pid)
        pid_file = (ROOT / ".grace/run/servers" / f"{interrupted.port}.json").exists()
    finally:
        signal.signal(signal.SIGINT, handler)
        interrupted.stop()  # only for a failed test: the interrupted start stopped it (checked below)
    assert not left, f"the interrupted start left processes behind: {left}"
    assert not pid_file


@pytest.mark.server
@pytest.mark.parametrize("study_name", ["study1", "study2"])
def test_smollm2_answers_every_sample_trial(cfg: Config, smollm2_server: Endpoint, tmp_path: Path,
                                            study_name: str) -> None:
    """The real small instruct model answers each of the 10 sample trials (short answers, to keep it quick)."""
    study = get_study(study_name)
    trials = study.load(cfg.study_file(study_name, sample=True))
    exp = cfg.experiment(study_name, "exp1")
    exp = exp.model_copy(update={"sampling": exp.sampling.model_copy(update={"max_tokens": 40})})
    res = asyncio.run(run_exp1(smollm2_server, study, trials, exp, tmp_path))
    rows = [json.loads(x) for x in (tmp_path / "exp1.jsonl").read_text().splitlines()]
    assert res.failed == 0 and len(rows) == 10 and len({r["trial_id"] for r in rows}) == 10
    assert all(r["response"] and r["model"] == "smollm2" and r["prompt_version"] == study.prompt_version + "+balanced"
               for r in rows)
    assert sum(len(r["response"].split()) for r in rows) > 50, "real text, not empty answers"


@pytest.mark.server
def test_full_studies_on_toy_every_row_answered(cfg: Config, toy_server: Endpoint, tmp_path: Path) -> None:
    """All 300 + 2,424 trials through the real server code; the table holds every trial once."""
    import pandas as pd

    for name, n in (("study1", 300), ("study2", 2424)):
        study = get_study(name)
        trials = study.load(cfg.study_file(name, sample=False))
        exp = cfg.experiment(name, "exp1")
        exp = exp.model_copy(update={"sampling": exp.sampling.model_copy(update={"max_tokens": 4})})
        # 32 in flight, as docs/benchmarks.md advises for 4-token answers (prefill-bound): 13.7-16.4 s for study 2
        # here against 21.6-55.7 s at the default (the server's 128 batch slots); the scale is under test, not that
        res = asyncio.run(run_exp1(toy_server, study, trials, exp, tmp_path / name, concurrency=32))
        table = pd.read_parquet(tmp_path / name / "exp1.parquet")
        assert res.failed == 0 and len(table) == n and table["trial_id"].is_unique
        assert table["response"].notna().all()
        print(f"{name}: {n} trials in {res.wall_s:.1f}s = {res.rps:.1f} trials/s (concurrency {res.concurrency})")
