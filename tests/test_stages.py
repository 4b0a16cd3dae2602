"""The stage skeleton (grace/stage.py) and the table that picks a stage (grace.pipeline.STAGES).

The skeleton's contract with a small stage of its own (resume, progress, the table, the replacement of a stage
that is redone whole), the table against what the config accepts, and, on the real toy server, `scoring_path`
from the config choosing the path of `run_stage`.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from grace.checkpoint import Checkpoint
from grace.config import EXPERIMENTS, SCORING_PATHS, Config, ExperimentConfig, load_config
from grace.errors import ConfigError
from grace.pipeline import STAGES, run_stage
from grace.progress import Progress
from grace.records import Exp2Record, Record
from grace.serving import Endpoint, ExternalServer, ManagedServer
from grace.stage import LocalStage, Write, run_local
from grace.studies.registry import get_study
from tests.conftest import ROOT


class Squares(LocalStage[int, Record]):
    """n -> a record keyed n whose status is ok, or error for the numbers in `failing` (redone on resume)."""

    experiment = "squares"
    file = "squares.jsonl"
    record_type = Record

    def __init__(self, n: int, failing: frozenset[int] = frozenset(), resumable: bool = True,
                 crash: bool = False) -> None:
        super().__init__("toy-study")
        self.n, self.failing, self.resumable, self.crash = n, failing, resumable, crash
        self.seen: list[int] = []

    def items(self) -> list[int]:
        return list(range(self.n))

    def key(self, item: int) -> str:
        return str(item)

    def work(self, todo: list[int], write: Write[Record], progress: Progress | None) -> int:
        for i in todo:
            self.seen.append(i)
            write(Record(trial_id=str(i), model="m", model_revision="r", study="toy-study", prompt_version=str(i * i),
                         status="error" if i in self.failing else "ok"))
            if self.crash and len(self.seen) == 2:
                raise RuntimeError("crashed mid-stage")
            if progress:
                progress(1)
        return len(todo)

    def rows(self, record: Record) -> list[dict[str, Any]]:
        return [{"key": record.trial_id, "square": int(record.prompt_version), "status": record.status}]


def test_resume_redoes_only_failed_rows_and_reports_the_rest_as_resumed(tmp_path: Path) -> None:
    calls: list[tuple[int, bool]] = []

    def progress(n: int, *, resumed: bool = False) -> None:
        calls.append((n, resumed))

    first = run_local(Squares(5, failing=frozenset({1, 3})), tmp_path, progress)
    assert (first.total, first.skipped, first.ok, first.failed, first.sent) == (5, 0, 3, 2, 5)
    calls.clear()
    again = Squares(6)  # one more item than before, and the failed ones now succeed
    second = run_local(again, tmp_path, progress)
    assert again.seen == [1, 3, 5]
    assert calls[0] == (3, True) and sum(n for n, r in calls if not r) == 3
    assert (second.skipped, second.ok, second.failed, second.sent) == (3, 6, 0, 3)
    table = pd.read_parquet(tmp_path / "squares.parquet")
    assert list(table["key"]) == [str(i) for i in range(6)] and list(table["square"]) == [0, 1, 4, 9, 16, 25]
    assert len(Checkpoint(tmp_path / "squares.jsonl", Record).load()) == 6


def test_a_stage_redone_whole_replaces_its_file_only_when_it_finishes(tmp_path: Path) -> None:
    run_local(Squares(4), tmp_path)
    before = (tmp_path / "squares.jsonl").read_text()
    with pytest.raises(RuntimeError, match="crashed"):
        run_local(Squares(4, resumable=False, crash=True), tmp_path)
    assert (tmp_path / "squares.jsonl").read_text() == before, "a crash leaves the old file as it was"
    again = Squares(3, resumable=False)
    res = run_local(again, tmp_path)
    assert again.seen == [0, 1, 2] and res.skipped == 0, "nothing is skipped: every item is redone"
    assert len((tmp_path / "squares.jsonl").read_text().splitlines()) == 3
    assert not list(tmp_path.glob(".squares.jsonl.*")), "no temporary file left"


def test_every_experiment_and_path_the_config_accepts_has_a_stage() -> None:
    accepted = set()
    for e in EXPERIMENTS:
        for p in SCORING_PATHS:
            try:
                ExperimentConfig(study="study1", experiment=e, scoring_path=p)
            except ValueError:
                continue
            accepted.add((e, p))
    assert accepted == set(STAGES) == {("exp1", "server"), ("exp2", "server"), ("exp2", "per-option"),
                                       ("exp2", "inprocess")}


def _config_with(tmp_path: Path, index: int, path: str) -> Config:
    d = tmp_path / "config"
    shutil.copytree(ROOT / "config", d)
    data = yaml.safe_load((d / "experiments.yaml").read_text())
    data["experiments"][index]["scoring_path"] = path
    (d / "experiments.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(d)


def test_scoring_path_per_option_from_config_and_none_for_exp1(tmp_path: Path) -> None:
    exps = yaml.safe_load((ROOT / "config" / "experiments.yaml").read_text())["experiments"]
    i2 = next(i for i, e in enumerate(exps) if e["experiment"] == "exp2")
    cfg = _config_with(tmp_path / "a", i2, "per-option")
    assert cfg.experiment(exps[i2]["study"], "exp2").scoring_path == "per-option"
    i1 = next(i for i, e in enumerate(exps) if e["experiment"] == "exp1")
    with pytest.raises(ConfigError, match=rf"experiments.yaml: experiments.{i1}: scoring_path 'inprocess' is for exp2"):
        _config_with(tmp_path / "b", i1, "inprocess")


@pytest.mark.server
def test_run_stage_scores_on_the_configured_path(cfg: Config, toy_server: Endpoint, tmp_path: Path) -> None:
    study = get_study("study1")
    trials = study.load(cfg.study_file("study1", sample=True))[:3]
    model = cfg.model("toy")
    sent = {}
    with ManagedServer(lambda: ExternalServer(toy_server.base_url, model)) as server:
        for path in ("server", "per-option"):
            exp = cfg.experiment("study1", "exp2").model_copy(update={"scoring_path": path})
            res = run_stage(server, model, study, trials, exp, tmp_path / path)
            assert res.ok == 3
            assert {r.path for r in Checkpoint(tmp_path / path / "exp2.jsonl", Exp2Record).load().values()} == {path}
            sent[path] = res.sent
    assert sent == {"server": 3, "per-option": 30}  # one batched request per trial vs one per option (10 a trial)
