"""Interrupted writes, odd answers, atomic files and run folders, against the real toy vLLM server.

- A checkpoint whose last line was cut mid-write: the resume keeps every complete line, redoes that one row
  (exactly one request), and says so.
- Empty, max_tokens-truncated and other-language answers are recorded with a status, never dropped.
- Tables are written atomically; a completed run folder is refused unless overwrite; `grace query` resumes
  its stable default folder without re-asking or rewriting finished rows.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from grace.checkpoint import Checkpoint, atomic_path, write_table
from grace.cli import main
from grace.config import Config, ExperimentConfig
from grace.errors import UserInputError
from grace.query import run_exp1_sync
from grace.records import Exp1Record
from grace.run import RunFolder
from grace.serving import Endpoint
from grace.studies.registry import get_study
from tests.support.fault_proxy import FaultProxy, Faults

pytestmark = pytest.mark.faults

CHAT = "/v1/chat/completions"


def exp1(cfg: Config, max_tokens: int = 8) -> ExperimentConfig:
    exp = cfg.experiment("study2", "exp1")
    return exp.model_copy(update={"sampling": exp.sampling.model_copy(update={"max_tokens": max_tokens}),
                                  "concurrency": 4})


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def dups(rows: list[dict]) -> int:
    return sum(n - 1 for n in Counter((r["trial_id"], r["replicate"]) for r in rows).values())


def test_truncated_last_line_is_redone_and_reported(cfg: Config, toy_server: Endpoint, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    args = ["query", "--model", "toy", "--study", "study2", "--sample", "--out", str(out)]
    with FaultProxy(toy_server.base_url) as proxy:
        assert main([*args, "--endpoint", proxy.url]) == 0
        ckpt = out / "toy" / "study2" / "exp1.jsonl"
        raw = ckpt.read_bytes()
        complete = raw.splitlines(keepends=True)
        lost = json.loads(complete[-1])["trial_id"]
        ckpt.write_bytes(b"".join(complete[:-1]) + complete[-1][: len(complete[-1]) // 2])  # crash mid-write
        before = proxy.forwarded[CHAT]
        capsys.readouterr()
        assert main([*args, "--endpoint", proxy.url]) == 0
        asked = proxy.forwarded[CHAT] - before
    printed = capsys.readouterr().out
    rows = lines(ckpt)
    assert asked == 1, f"only the truncated row may be asked again, asked {asked}"
    assert "truncated" in printed and "skipped 9 already done" in printed
    assert len(rows) == 10 and dups(rows) == 0 and rows[-1]["trial_id"] == lost
    assert ckpt.read_bytes().endswith(b"\n")
    assert Checkpoint(ckpt, Exp1Record).load() and Checkpoint(ckpt, Exp1Record).report.truncated == 0
    print(f"FAULTS-TABLE | truncated last JSONL line | 2 | 10 | {len(rows)} | {dups(rows)} | 0")


def test_query_rerun_of_a_finished_folder_asks_nothing_and_keeps_rows(
    cfg: Config, toy_server: Endpoint, tmp_path: Path
) -> None:
    """`grace query` writes to a stable folder and resumes: "completed" there means every key is done, and a
    re-run then sends no request and leaves every finished checkpoint line byte for byte as it was."""
    out = tmp_path / "q"
    with FaultProxy(toy_server.base_url) as proxy:
        args = ["query", "--model", "toy", "--study", "study2", "--sample", "--out", str(out), "--endpoint", proxy.url]
        assert main(args) == 0
        ckpt = out / "toy" / "study2" / "exp1.jsonl"
        first = ckpt.read_bytes()
        n = proxy.forwarded[CHAT]
        assert main(args) == 0
        assert proxy.forwarded[CHAT] == n, "a finished folder must not be asked again"
    assert ckpt.read_bytes() == first
    assert not list(out.rglob("*.tmp")), "no temporary files left behind"


class RewritingProxy(FaultProxy):
    """Forwards to the real server, then replaces some answers: the 2nd with empty text, the 3rd with French."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream, Faults())
        self.n = 0

    def _reply(self, h: object, code: int, body: bytes) -> None:  # type: ignore[override]
        data = json.loads(body) if body.startswith(b"{") else {}
        if code == 200 and data.get("object") == "chat.completion":
            self.n += 1
            msg = data["choices"][0]["message"]
            if self.n == 2:
                msg["content"], data["choices"][0]["finish_reason"] = "", "stop"
            elif self.n == 3:
                msg["content"], data["choices"][0]["finish_reason"] = "Je pense que c'était très bien.", "stop"
            body = json.dumps(data).encode()
        FaultProxy._reply(h, code, body)  # type: ignore[arg-type]


def test_empty_enormous_and_foreign_answers_are_recorded(cfg: Config, toy_server: Endpoint, tmp_path: Path) -> None:
    study = get_study("study2")
    trials = study.load(cfg.study_file("study2", sample=True))
    exp = exp1(cfg, max_tokens=48).model_copy(update={"concurrency": 1})
    with RewritingProxy(toy_server.base_url) as proxy:
        res = run_exp1_sync(Endpoint(proxy.url, toy_server.model, toy_server.revision), study, trials, exp, tmp_path)
    rows = lines(tmp_path / "exp1.jsonl")
    by_id = {r["trial_id"]: r for r in rows}
    assert len(rows) == 10 and dups(rows) == 0 and res.failed == 0
    empty, foreign = by_id[trials[1]["trial_id"]], by_id[trials[2]["trial_id"]]
    assert empty["status"] == "empty" and empty["response"] == ""
    assert foreign["status"] == "ok" and foreign["response"].startswith("Je pense")
    truncated = [r for r in rows if r["status"] == "truncated"]
    assert truncated, "the random toy model runs into max_tokens"
    assert all(r["finish_reason"] == "length" and r["completion_tokens"] == 48 for r in truncated)
    table = pd.read_parquet(tmp_path / "exp1.parquet")
    assert len(table) == 10 and set(table["status"]) >= {"empty", "ok", "truncated"}
    assert res.other.get("empty") == 1
    print(f"FAULTS-TABLE | empty / max_tokens / other-language answers | 1 | 10 | {len(rows)} | {dups(rows)} | 0")


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "exp1.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half a fi")
        raise RuntimeError("disk full")
    assert target.read_text() == "old\n" and not list(tmp_path.glob(".*.tmp"))
    paths = write_table(pd.DataFrame([{"a": 1, "b": {"x": 1}}]), tmp_path / "t")
    assert [p.name for p in paths] == ["t.parquet", "t.csv"] and not list(tmp_path.glob(".*.tmp"))
    assert pd.read_csv(tmp_path / "t.csv")["b"][0] == '{"x": 1}'


def test_completed_run_folder_is_not_overwritten_unless_asked(cfg: Config, tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "r")
    run.begin(cfg, {"p": 1})
    run.end("completed")
    snapshot = run.run_json.read_bytes()
    with pytest.raises(UserInputError, match="completed run.*--overwrite"):
        run.begin(cfg, {"p": 2})
    assert run.run_json.read_bytes() == snapshot
    run.begin(cfg, {"p": 2}, overwrite=True)
    assert run.read()["status"] == "running" and run.read()["attempts"] == 2
