"""Counterbalanced options and prompt variants on the real toy server, through the command line: a run of study 2's
sample in every wording records each prompt's option order, Exp 2 scores every rotation, the report has the
position-bias table, the comparison the per-wording measures; and a model that always picks the first option
listed (a proxy in front of the toy server rewrites its replies) is flagged."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from grace.cli import main
from grace.config import load_config
from grace.serving import Endpoint
from grace.studies.orders import OrderPlan
from grace.studies.registry import get_study
from grace.studies.study2 import UTTERANCES
from tests.conftest import ROOT
from tests.support.fault_proxy import FaultProxy

pytestmark = pytest.mark.server
STUDY2 = get_study("study2")
WORDINGS = ("main", "everyday", "observer")
_LISTED = re.compile(r'^\s*[-*]\s+"?(?P<u>[^"\n]+?)"?\s*$')


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def listed(user: str) -> list[str]:
    """The utterances a prompt lists one per line, in its order."""
    return [m["u"] for line in user.splitlines() if (m := _LISTED.match(line)) and m["u"] in UTTERANCES]


@pytest.fixture()
def every_wording(tmp_path: Path) -> Path:
    """The project's config with Exp 1 of study 2 in every wording too (`variants: all`), short replies."""
    d = tmp_path / "config"
    d.mkdir()
    shutil.copy(ROOT / "config" / "models.yaml", d / "models.yaml")
    exp = yaml.safe_load((ROOT / "config" / "experiments.yaml").read_text())
    for s in exp["studies"].values():
        s["input"], s["sample"] = str(ROOT / s["input"]), str(ROOT / s["sample"])
    for e in exp["experiments"]:
        e["retry"] = {"attempts": 2, "backoff_initial_s": 0.1, "backoff_max_s": 0.5, "request_timeout_s": 60}
        if e["experiment"] == "exp1":
            e["variants"] = "all"
            e["sampling"].update(max_tokens=16, replications=3)
    (d / "experiments.yaml").write_text(yaml.safe_dump(exp, sort_keys=False))
    return d


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(args)
    out = capsys.readouterr()
    assert code in (0, 1), out  # 1: rows with another status (truncated replies of a random model)
    return out.out


def test_study2_sample_in_every_wording_counterbalanced(every_wording: Path, toy_server: Endpoint, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    common = ["--model", "toy", "--study", "study2", "--sample", "--endpoint", toy_server.base_url, "--out", str(run),
              "--config-dir", str(every_wording)]
    _run(["query", *common], capsys)
    _run(["score", *common], capsys)
    stage = run / "toy" / "study2"
    trials = {t["trial_id"]: t for t in STUDY2.load(ROOT / "data" / "study2_sample.csv")}

    # Exp 1: every trial x replicate in every wording, each prompt listing the options in its recorded order
    exp1 = _lines(stage / "exp1.jsonl")
    assert len(exp1) == 10 * 3 * 3 and Counter(r["prompt_variant"] for r in exp1) == dict.fromkeys(WORDINGS, 30)
    plan = OrderPlan(STUDY2, list(trials.values()), seed=2026, replications=3)
    for r in exp1:
        order = r["option_order"]["utterance"]
        assert listed(r["messages"][-1]["content"]) == order and sorted(order) == sorted(UTTERANCES)
        assert tuple(order) == plan.orders(r["trial_id"], r["replicate"])["utterance"], "the same on a rerun"
        assert r["prompt_version"] == STUDY2.variant("exp1", r["prompt_variant"]).version + "+balanced"
    first = Counter(r["option_order"]["utterance"][0] for r in exp1 if r["prompt_variant"] == "main")
    assert len(first) >= 6, f"the first listed utterance varies over trials and replicates: {first}"
    again = _run(["query", *common], capsys)
    assert "skipped 90 already done" in again, again

    # Exp 2: every wording, every rotation: each utterance once in each position per record, the mean kept
    exp2 = _lines(stage / "exp2.jsonl")
    assert len(exp2) == 30 and {r["status"] for r in exp2} == {"ok"}
    for r in exp2:
        rots = r["rotations"]["utterance"]
        assert len(rots) == 8 and r["prompt_version"].endswith("+circular")
        assert Counter((o, i) for x in rots for i, o in enumerate(x["options"])) == \
            {(o, i): 1 for o in UTTERANCES for i in range(8)}
        pooled = r["questions"]["utterance"]
        assert pooled["pooled_over"] == 8 and pooled["options"] == list(UTTERANCES)
        for u in UTTERANCES:
            assert pooled["probs"][u] == pytest.approx(sum(x["probs"][u] for x in rots) / 8)
        assert listed_inline(rots[3]["prompt"]) == rots[3]["options"]

    # every table row names its wording; Exp 1 rows their option order
    t1, t2 = pd.read_parquet(stage / "exp1.parquet"), pd.read_parquet(stage / "exp2.parquet")
    assert set(t1["prompt_variant"]) == set(t2["prompt_variant"]) == set(WORDINGS)
    assert t1["option_order_utterance"].str.count(r" \| ").eq(7).all() and set(t2["rotations"]) == {8}
    assert main(["extract", "--study", "study2", "--stage", str(stage)]) in (0, 1)
    extracted = _lines(stage / "extracted.jsonl")
    assert Counter(r["prompt_variant"] for r in extracted) == dict.fromkeys(WORDINGS, 30)
    assert set(pd.read_parquet(stage / "extracted.parquet")["prompt_variant"]) == set(WORDINGS)

    # the report: the position-bias table; the comparison: each wording, pooled, the spread
    assert main(["report", str(run)]) == 0
    report = json.loads((run / "report" / "report.json").read_text())
    bias = {(b["study"], b["experiment"]): b for b in report["position_bias"]}
    assert bias[("study2", "exp2")]["n"] == 30 * 8 and bias[("study2", "exp2")]["records"] == 30
    assert sum(bias[("study2", "exp2")]["by_position"]) == pytest.approx(1.0, abs=1e-3)
    md = (run / "report" / "report.md").read_text()
    assert "## Position bias" in md and "- **toy / study2 exp2**, list `utterance` (n 240): " in md
    checks = report["models"]["toy"]["study2"]["checks"]
    assert {c["name"] for c in checks if c["experiment"] == "exp2"} >= {"position bias", "row count"}
    assert all(c["passed"] for c in checks if c["name"] == "row count"), "30 rows expected: trials x wordings"
    assert main(["compare", str(run), "--bootstrap", "50", "--no-plots", "--config-dir", str(every_wording)]) == 0
    rep = json.loads((run / "compare" / "compare.json").read_text())
    (head,) = [r for r in rep["ranking"] if r["source"] == "exp2"]
    assert head["prompt_variant"] == "pooled"
    per = {r["prompt_variant"]: r for r in rep["by_prompt_variant"] if r["source"] == "exp2"}
    assert set(per) == {*WORDINGS, "pooled"} and all(per[v]["js"] is not None for v in per)
    (spread,) = [s for s in rep["variant_spread"] if s["source"] == "exp2"]
    assert set(spread["values"]) == set(WORDINGS) and spread["range"] >= 0 and spread["pooled"] == head["js"]
    assert "## Prompt variants" in (run / "compare" / "compare.md").read_text()
    print(f"DESIGN-RUN | toy study2 sample | position bias exp2 {bias[('study2', 'exp2')]['by_position']} | "
          f"JS by wording {spread['values']} pooled {spread['pooled']:.3f}")


def listed_inline(prompt: str) -> list[str]:
    """The utterances an Exp 2 prompt lists on one line, in its order (no utterance is part of another)."""
    line = next(x for x in prompt.splitlines() if sum(u in x for u in UTTERANCES) == 8)
    return sorted(UTTERANCES, key=line.index)


def always_first(path: str, request: bytes, reply: bytes) -> bytes:
    """A chat reply replaced by the first utterance its prompt lists: a model that follows position only."""
    if not path.endswith("/chat/completions"):
        return reply
    data = json.loads(reply)
    user = json.loads(request)["messages"][-1]["content"]
    data["choices"][0]["message"]["content"] = f"{listed(user)[0]}\nThat is what I would say."
    data["choices"][0]["finish_reason"] = "stop"
    return json.dumps(data).encode()


def test_a_model_that_always_picks_the_first_listed_option_is_flagged(
        every_wording: Path, toy_server: Endpoint, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    with FaultProxy(toy_server.base_url, answer=always_first) as proxy:
        _run(["query", "--model", "toy", "--study", "study2", "--sample", "--endpoint", proxy.url, "--out", str(run),
              "--config-dir", str(every_wording)], capsys)
    stage = run / "toy" / "study2"
    assert main(["extract", "--study", "study2", "--stage", str(stage)]) == 0
    extracted = _lines(stage / "extracted.jsonl")
    assert len(extracted) == 90 and {r["status"] for r in extracted} == {"ok"}
    assert main(["report", str(run)]) == 0
    report = json.loads((run / "report" / "report.json").read_text())
    (bias,) = report["position_bias"]
    assert (bias["experiment"], bias["question"], bias["n"]) == ("exp1", "utterance", 90)
    assert bias["flagged"] and bias["by_position"][0] == 1.0 and bias["p_value"] < 0.01
    assert bias["position_tv"] == pytest.approx(7 / 8) and bias["option_tv"] < bias["position_tv"]
    check = next(c for c in report["models"]["toy"]["study2"]["checks"] if c["name"] == "position bias")
    assert not check["passed"] and not check["fatal"] and "follow the listed position" in check["detail"]
    md = (run / "report" / "report.md").read_text()
    assert "**FLAG**: follows position" in md
    cfg = load_config(every_wording)
    assert STUDY2.stage_rows(cfg.experiment("study2", "exp1"), 10) == 90
