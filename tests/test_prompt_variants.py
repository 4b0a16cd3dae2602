"""Prompt variants without a server: three real wordings per study and experiment, the same facts and options; the
comparison per wording and pooled, the spread, a ranking flip made on purpose; `grace plan` counting the extra
requests."""

from __future__ import annotations

import difflib
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from grace.cli import main
from grace.compare.human import load_human
from grace.compare.outputs import POOLED
from grace.compare.report import compare_run
from grace.config import Config
from grace.records import Exp2Record, OptionScores
from grace.studies import Layout
from grace.studies.registry import STUDIES, get_study
from grace.studies.study1.study import KNOWLEDGE, STATES
from grace.studies.study2 import UTTERANCES, state_label
from grace.studies.study2.goals import classify_goal
from grace.studies.text import clean, question, statement

ROOT = Path(__file__).resolve().parent.parent
STUDY1, STUDY2 = get_study("study1"), get_study("study2")
HUMAN = load_human(STUDIES.values())


def _instructions(text: str, cells: list[str]) -> str:
    """A prompt with the trial's own text taken out: the wording's words alone."""
    for c in sorted(cells, key=len, reverse=True):
        text = text.replace(c, "")
    return text


@pytest.mark.parametrize("study", [STUDY1, STUDY2], ids=lambda s: s.name)
def test_three_real_wordings_per_study_and_experiment(study) -> None:
    sample = study.load(ROOT / "data" / f"{study.name}_sample.csv")
    for exp in ("exp1", "exp2"):
        variants = study.variants(exp)
        assert len(variants) >= 3 and variants[0].name == "main"
        versions = [v.version for v in variants]
        assert len(set(versions)) == len(versions) and versions[0] in (study.prompt_version, study.exp2_prompt_version)
    for t in sample:
        if study is STUDY2:
            cells = [clean(t["Precontext"]), clean(t["Scenario"]), t["SP_Name"], t["LS_Name"], *UTTERANCES]
        else:
            cells = [clean(t["story_setup"]), question(t["priorQ"]), statement(t["speach"]), question(t["speachQ"]),
                     study.knowledge_question(t), *KNOWLEDGE]
        exp1 = {v.name: study.exp1_messages(t, Layout(v.name)) for v in study.variants("exp1")}
        exp2 = {v.name: study.exp2_questions(t, Layout(v.name)) for v in study.variants("exp2")}
        for a, b in itertools.combinations(exp1, 2):
            assert exp1[a][0]["content"] != exp1[b][0]["content"], "another system message"
            wa, wb = (_instructions(exp1[v][1]["content"], cells) for v in (a, b))
            assert difflib.SequenceMatcher(None, wa, wb).ratio() < 0.75, (a, b, wa, wb)
            qa, qb = ([_instructions(q.messages[-1]["content"], cells) for q in exp2[v]] for v in (a, b))
            assert all(x != y for x, y in zip(qa, qb, strict=True))
        for name in exp1:  # the same facts, the same options, in every wording
            user = exp1[name][1]["content"]
            assert all(c in user for c in cells), name
            asked = {q.name: q for q in exp2[name]}
            if study is STUDY2:
                state = state_label(t["State"])
                assert f"{state} " in user and all(f"{state} " in q.messages[-1]["content"] for q in exp2[name])
                assert classify_goal(user.split("\n")[3], (t["SP_Name"], t["LS_Name"])) == \
                    STUDY2.condition(t)["goal"], "the goal sentence reads as the same goal"
                assert asked["utterance"].options == UTTERANCES
            else:
                assert asked["prior"].options == asked["posterior"].options == STATES
                labels = ("Initial Answer:", "Probabilities: 0: <x>%", "Knowledge: <yes or no>")
                assert all(label in user for label in labels), "the reply format the extraction reads"


# --- the comparison per wording -------------------------------------------------------------------------

def _scores(probs: dict[str, float]) -> OptionScores:
    opts = list(probs)
    return OptionScores(prompt="...", options=opts, token_ids={o: [i] for i, o in enumerate(opts)},
                        logprobs={o: math.log(max(p, 1e-300)) for o, p in probs.items()}, probs=dict(probs),
                        probs_norm=dict(probs), entropy=0.0, argmax=max(probs, key=probs.get))


def _write_variant(folder: Path, model: str, variant: str, trials: list[dict[str, str]], mix: float) -> None:
    """Exp 2 records of one wording: each trial's distribution the human cell's mixed with uniform by `mix`
    (0: exactly human, JS 0; 1: uniform)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "exp2.jsonl", "a") as f:
        for t in trials:
            c = STUDY2.condition(t)
            human = HUMAN.study2.cells[(c["goal"], c["state"])]
            p = (1 - mix) * human + mix / 8
            rec = Exp2Record(trial_id=t["trial_id"], model=model, model_revision="r", study="study2",
                             prompt_version=f"study2-exp2-{variant}", prompt_variant=variant,
                             questions={"utterance": _scores(dict(zip(UTTERANCES, p, strict=True)))})
            f.write(rec.model_dump_json() + "\n")


def test_per_variant_measures_spread_and_a_ranking_flip_made_on_purpose(tmp_path: Path, cfg: Config) -> None:
    """Model a is closer to the humans under main and everyday, model b under observer: the pair flips."""
    trials = STUDY2.load(ROOT / "data" / "study2.csv")[::12]  # 202 trials, every cell
    run = tmp_path / "run"
    mixes = {"a": {"main": 0.1, "everyday": 0.2, "observer": 0.8}, "b": {"main": 0.5, "everyday": 0.5, "observer": 0.3}}
    for model, by_variant in mixes.items():
        for variant, mix in by_variant.items():
            _write_variant(run / model / "study2", model, variant, trials, mix)
    rep = compare_run(run, STUDIES.values(), cfg=cfg, n_boot=100, plots=False)

    headline = {(r.model, r.source): r for r in rep.study2}
    assert {r.prompt_variant for r in rep.study2} == {POOLED} and len(rep.study2) == 2
    assert headline[("a", "exp2")].n_trials == len(trials), "pooled: each trial one unit, not one per wording"
    rows = {(r.model, r.prompt_variant): r for r in rep.by_prompt_variant}
    assert set(rows) == {(m, v) for m in "ab" for v in ("main", "everyday", "observer", POOLED)}
    assert rows[("a", "main")].rank == 1 and rows[("a", "observer")].rank == 2 and rows[("b", "observer")].rank == 1
    for model, by_variant in mixes.items():
        assert rows[(model, "main")].js < rows[(model, "everyday")].js or by_variant["main"] == by_variant["everyday"]
    spread = {s.model: s for s in rep.variant_spread}
    a_js = [rows[("a", v)].js for v in ("main", "everyday", "observer")]
    assert spread["a"].measure == "js" and spread["a"].n_variants == 3
    assert spread["a"].range == pytest.approx(max(a_js) - min(a_js))
    assert spread["a"].sd == pytest.approx(np.std(a_js, ddof=1))
    assert spread["a"].pooled == pytest.approx(headline[("a", "exp2")].js)
    flips = {(f.model_a, f.model_b, f.variant_a, f.variant_b) for f in rep.ranking_flips}
    assert flips == {("a", "b", "main", "observer"), ("a", "b", "everyday", "observer")}
    md = (run / "compare" / "compare.md").read_text()
    assert "## Prompt variants" in md and "**Ranking flips across wordings**: 2" in md
    assert "**a** ahead of b under `main`" in md and "| study2 | exp2 | a | js |" in md
    data = json.loads((run / "compare" / "compare.json").read_text())
    assert len(data["ranking_flips"]) == 2 and {r["prompt_variant"] for r in data["ranking"]} == {POOLED}
    # the paired difference a - b within each wording: a closer (JS lower) under main and everyday, b under
    # observer, each distinguishable on 202 trials; it depends on the wording, and the pooled one says so beside it
    js_diff = {d.prompt_variant: d for d in rep.differences_by_prompt_variant if d.measure == "js"}
    assert set(js_diff) == {"main", "everyday", "observer"}
    assert all((d.model, d.other, d.n_trials) == ("a", "b", len(trials)) for d in js_diff.values())
    assert js_diff["main"].difference < 0 and js_diff["everyday"].difference < 0 < js_diff["observer"].difference
    assert all(d.distinguishable for d in js_diff.values())
    assert js_diff["observer"].difference == pytest.approx(rows[("a", "observer")].js - rows[("b", "observer")].js)
    assert len(data["differences_by_prompt_variant"]) == len(rep.differences_by_prompt_variant)
    line = next(x for x in md.splitlines() if x.startswith("- study2 exp2 js, a - b: main -"))
    assert "; pooled " in line and line.endswith("**depends on the wording**"), line
    assert "**Findings reproduced under each wording**" in md

    # no flip when one model is ahead under every wording
    calm = tmp_path / "calm"
    for model, mix in (("a", 0.1), ("b", 0.6)):
        for variant in ("main", "everyday", "observer"):
            _write_variant(calm / model / "study2", model, variant, trials, mix + (0.1 if variant == "observer" else 0))
    rep = compare_run(calm, STUDIES.values(), cfg=cfg, n_boot=50, plots=False)
    calm_md = (calm / "compare" / "compare.md").read_text()
    assert rep.ranking_flips == [] and "none: every pair of models keeps its order" in calm_md
    assert next(x for x in calm_md.splitlines() if x.startswith("- study2 exp2 js, a - b:")).endswith(": holds")


def test_one_wording_is_compared_as_before(tmp_path: Path, cfg: Config) -> None:
    trials = STUDY2.load(ROOT / "data" / "study2.csv")[::24]
    _write_variant(tmp_path / "run" / "m" / "study2", "m", "main", trials, 0.0)
    rep = compare_run(tmp_path / "run", STUDIES.values(), cfg=cfg, n_boot=50, plots=False)
    (res,) = rep.study2
    assert res.prompt_variant == "main" and res.js == pytest.approx(0.0, abs=1e-12)
    assert rep.by_prompt_variant == [] and rep.variant_spread == [] and rep.ranking_flips == []
    assert rep.differences_by_prompt_variant == []
    assert "## Prompt variants" not in (tmp_path / "run" / "compare" / "compare.md").read_text()


# --- grace plan -----------------------------------------------------------------------------------------

def test_plan_counts_the_variants_and_rotations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped config: Exp 1 in the main wording, Exp 2 in all three under every rotation (study 2: 8 prompts per
    trial and variant, study 1: prior, posterior and 2 knowledge orders); one wording, fixed order: 1 prompt."""
    assert main(["plan", "--model", "smollm2", "--profile", "local"]) == 0
    out = capsys.readouterr().out
    assert "study2: per trial" in out and "2,424 Exp 1 requests; Exp 2 3 variant(s) x 8 prompts" in out
    assert "58,176 prompts scored" in out and "study1:" in out and "3 variant(s) x 4 prompts" in out
    cfg_dir = tmp_path / "config"
    cfg_dir.mkdir()
    (cfg_dir / "models.yaml").write_text((ROOT / "config" / "models.yaml").read_text())
    import yaml

    exp = yaml.safe_load((ROOT / "config" / "experiments.yaml").read_text())
    for s in exp["studies"].values():
        s["input"], s["sample"] = str(ROOT / s["input"]), str(ROOT / s["sample"])
    for e in exp["experiments"]:
        e.update(variants=["main"], option_order="fixed") if e["experiment"] == "exp2" else \
            e.update(variants="all")
    (cfg_dir / "experiments.yaml").write_text(yaml.safe_dump(exp))
    assert main(["plan", "--model", "smollm2", "--profile", "local", "--config-dir", str(cfg_dir)]) == 0
    out = capsys.readouterr().out
    assert "x 3 prompt variant(s): 7,272 Exp 1 requests; Exp 2 1 variant(s) x 1 prompts" in out
    assert "2,424 prompts scored" in out and "x 3 prompt variant(s): 900 Exp 1 requests" in out
