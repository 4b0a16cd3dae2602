"""Exp 2 on the real vLLM server: server path vs in-process path agreement, request counts, resume, failures.

Agreement tolerance: |Δ log-probability| < 1e-3 per option (summed over its tokens; both paths run float32 on
the CPU; measured differences are ~1e-6 on toy and ~1e-4 or below on SmolLM2), and the same argmax.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from grace.checkpoint import Checkpoint
from grace.cli import main
from grace.config import Config
from grace.records import Exp2Record
from grace.scoring import run_exp2_inprocess, run_exp2_sync
from grace.scoring.inprocess import InProcessScorer
from grace.scoring.tokenize import load_tokenizer
from grace.serving import Endpoint
from grace.studies.registry import get_study

TOL = 1e-3


def records(out: Path) -> dict[str, Exp2Record]:
    return Checkpoint(out / "exp2.jsonl", Exp2Record).load()


def assert_agree(a: dict[str, Exp2Record], b: dict[str, Exp2Record], n: int) -> float:
    assert len(a) == len(b) == n
    worst = 0.0
    for key, ra in a.items():
        rb = b[key]
        assert ra.status == rb.status == "ok"
        assert ra.questions.keys() == rb.questions.keys()
        for q, qa in ra.questions.items():
            qb = rb.questions[q]
            assert qa.token_ids == qb.token_ids and qa.prompt == qb.prompt
            for opt in qa.options:
                worst = max(worst, abs(qa.logprobs[opt] - qb.logprobs[opt]))
            assert qa.argmax == qb.argmax, (key, q, qa.logprobs, qb.logprobs)
    assert worst < TOL, worst
    return worst


def assert_distributions(recs: dict[str, Exp2Record]) -> None:
    for rec in recs.values():
        for qs in rec.questions.values():
            assert set(qs.probs) == set(qs.options) == set(qs.logprobs)
            assert abs(sum(qs.probs.values()) - 1) < 1e-6 and abs(sum(qs.probs_norm.values()) - 1) < 1e-6
            assert all(math.isfinite(v) and v < 0 for v in qs.logprobs.values())
            assert 0 <= qs.entropy <= math.log(len(qs.options)) + 1e-9


@pytest.mark.parametrize("study_name,per_trial,reads,per_option,rows,options",
                         [("study1", 1, 4, 12, 4, 10), ("study2", 2, 40, 64, 16, 8)])
def test_toy_paths_agree_on_samples(cfg: Config, toy_server: Endpoint, tmp_path: Path, study_name: str,
                                    per_trial: int, reads: int, per_option: int, rows: int, options: int) -> None:
    """The main wording; every question whose options are permutable under each rotation of them (study 1's yes/no
    twice, study 2's 8 utterances 8 times): more reads and prompts, the same requests per trial on the server path."""
    study = get_study(study_name)
    # 5 of the sample's 10 trials (the paths agree trial by trial; 10 took 45 s of the toy lane for study 2's 64
    # per-option requests each)
    n = 5
    trials = study.load(cfg.study_file(study_name, sample=True), limit=n)
    exp = cfg.experiment(study_name, "exp2").model_copy(update={"variants": "main"})
    model = cfg.model("toy")
    srv = run_exp2_sync(toy_server, study, trials, exp, tmp_path / "server")
    opt = run_exp2_sync(toy_server, study, trials, exp, tmp_path / "per", path="per-option")
    inp = run_exp2_inprocess(model.weights, study, trials, tmp_path / "inproc", model="toy", batch_size=8, exp=exp)
    assert (srv.ok, opt.ok, inp.ok) == (n, n, n)
    # one request per wave of trie reads (roots, then deeper nodes) vs one request per option
    assert srv.sent == per_trial * n and opt.sent == per_option * n
    assert {r.reads for r in records(tmp_path / "server").values()} == {reads}  # one per trie node
    assert inp.sent >= 1 and all(r.sequences == rows for r in records(tmp_path / "inproc").values())
    a, b, c = records(tmp_path / "server"), records(tmp_path / "per"), records(tmp_path / "inproc")
    assert_distributions(a)
    assert_agree(a, c, n)
    assert_agree(a, b, n)
    assert {r.path for r in c.values()} == {"inprocess"}
    for rec in a.values():  # each rotated question: its rotations as sent, and their mean
        for name, rots in rec.rotations.items():
            assert rec.questions[name].pooled_over == len(rots) == len(study.permutable[name])
            assert [r.options[0] for r in rots] != [rots[0].options[0]] * len(rots)
    # the tidy table: one row per trial x question x option (a rotated question's mean)
    import pandas as pd
    df = pd.read_parquet(tmp_path / "server" / "exp2.parquet")
    assert len(df) == n * options and set(df["prompt_variant"]) == {"main"}
    assert df.groupby(["trial_id", "question"])["prob"].sum().sub(1).abs().max() < 1e-6
    # resume: nothing left to do, no request sent, no duplicate lines in the table
    again = run_exp2_sync(toy_server, study, trials, exp, tmp_path / "server")
    assert (again.skipped, again.sent, again.ok) == (n, 0, n)
    assert len(pd.read_parquet(tmp_path / "server" / "exp2.parquet")) == n * options


def test_smollm2_study1_sample_paths_agree(cfg: Config, smollm2_server: Endpoint, tmp_path: Path) -> None:
    study = get_study("study1")
    trials = study.load(cfg.study_file("study1", sample=True))
    model = cfg.model("smollm2")
    exp = cfg.experiment("study1", "exp2").model_copy(update={"variants": "main"})
    srv = run_exp2_sync(smollm2_server, study, trials, exp, tmp_path / "s")
    inp = run_exp2_inprocess(model.weights, study, trials, tmp_path / "i", model="smollm2", batch_size=8, exp=exp)
    assert srv.ok == inp.ok == 10
    a = records(tmp_path / "s")
    assert_distributions(a)
    worst = assert_agree(a, records(tmp_path / "i"), 10)
    print(f"smollm2 study1 sample: max |dlogprob| server vs in-process = {worst:.2e}")
    # a real model puts real mass on the digits: not a flat random distribution
    assert max(max(r.questions["prior"].probs.values()) for r in a.values()) > 0.3


def test_context_overflow_is_a_recorded_status(cfg: Config, toy_server: Endpoint, tmp_path: Path) -> None:
    study = get_study("study1")
    trials = study.load(cfg.study_file("study1", sample=True))[:2]
    long = dict(trials[1], story_setup="the apples are red and the pears are green. " * 500)  # > 2048 tokens
    trials = [trials[0], long]
    exp = cfg.experiment("study1", "exp2").model_copy(update={"variants": "main"})
    res = run_exp2_sync(toy_server, study, trials, exp, tmp_path / "s")
    assert res.ok == 1 and res.other == {"context_overflow": 1}
    rec = records(tmp_path / "s")[long["trial_id"]]
    assert rec.status == "context_overflow" and not rec.questions and "HTTP 400" in (rec.error or "")
    # in-process: the model's own context (max_position_embeddings 4096 for toy) is checked before scoring
    scorer = InProcessScorer(cfg.model("toy").weights, max_len=2048)
    inp = run_exp2_inprocess(cfg.model("toy").weights, study, trials, tmp_path / "i", model="toy",
                             scorer=scorer, tokenizer=load_tokenizer(cfg.model("toy")), exp=exp)
    assert inp.ok == 1 and inp.other == {"context_overflow": 1}


def test_cli_score_sample(cfg: Config, toy_server: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["score", "--model", "toy", "--study", "study2", "--sample", "--limit", "3",
                 "--endpoint", toy_server.base_url, "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "3 trials x 3 prompt variant(s)" in out and "9 ok" in out and "2.00 requests/row" in out
    assert (tmp_path / "toy" / "study2" / "exp2.csv").exists()
    assert main(["score", "--model", "toy", "--study", "study2", "--sample", "--path", "inprocess",
                 "--endpoint", toy_server.base_url, "--out", str(tmp_path)]) == 2
