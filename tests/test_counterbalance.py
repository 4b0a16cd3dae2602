"""Counterbalanced answer options without a server: the seeded, balanced orders; the prompts that list them; Exp 2's
rotations and their average; the extraction whatever the order; the position-bias measure and its flag."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from grace.cli import main
from grace.config import Config, ExperimentConfig
from grace.errors import ConfigError
from grace.records import Exp1Record, Exp2Record, ExtractedRecord, OptionScores, variant_key
from grace.report.load import StudyData
from grace.report.position import Observations, measure, position_bias
from grace.scoring.logprobs import pool, score_options
from grace.studies import AS_WRITTEN, Layout
from grace.studies.orders import OrderPlan, base_order, rotations
from grace.studies.registry import get_study
from grace.studies.study1 import KNOWLEDGE, STATES
from grace.studies.study2 import UTTERANCES
from grace.studies.study2.rules import extract_study2

ROOT = Path(__file__).resolve().parent.parent
STUDY1, STUDY2 = get_study("study1"), get_study("study2")


@pytest.fixture(scope="module")
def study2_trials() -> list[dict[str, str]]:
    return STUDY2.load(ROOT / "data" / "study2.csv")


def positions(orders: list[tuple[str, ...]]) -> Counter[tuple[str, int]]:
    return Counter((o, i) for order in orders for i, o in enumerate(order))


# --- the orders ------------------------------------------------------------------------------------------

def test_base_order_is_seeded_and_its_rotations_are_a_latin_square() -> None:
    a = base_order(UTTERANCES, 2026, "study2", "utterance")
    assert a == base_order(UTTERANCES, 2026, "study2", "utterance"), "the same on a rerun"
    assert sorted(a) == sorted(UTTERANCES) and a != UTTERANCES
    assert base_order(UTTERANCES, 7, "study2", "utterance") != a, "another seed, another base order"
    rots = rotations(a)
    assert len(rots) == 8 and len(set(rots)) == 8
    assert set(positions(rots).values()) == {1}, "each option in each position exactly once"
    assert {r[0] for r in rots} == set(UTTERANCES)


def test_each_option_in_each_position_equally_often_over_a_conditions_trials(study2_trials) -> None:
    """Full study 2 (202 trials per goal x state cell), Exp 1 with 4 replicates: 808 units per cell, a multiple of 8,
    so every utterance stands in every position exactly 101 times in every cell; with 1 replicate (202 units) the
    counts are as even as they can be (25 or 26)."""
    for reps, expected in ((4, {101}), (1, {25, 26})):
        plan = OrderPlan(STUDY2, study2_trials, seed=2026, replications=reps)
        by_cell: dict[tuple[str, str], list[tuple[str, ...]]] = {}
        for t in study2_trials:
            cell = tuple(STUDY2.condition(t).values())
            by_cell.setdefault(cell, []).extend(plan.orders(t["trial_id"], r)["utterance"] for r in range(reps))
        assert len(by_cell) == 12
        for cell, orders in by_cell.items():
            counts = positions(orders)
            assert len(counts) == 64 and set(counts.values()) <= expected, (cell, reps, sorted(set(counts.values())))
    again = OrderPlan(STUDY2, study2_trials, seed=2026, replications=1)
    assert [again.orders(t["trial_id"]) for t in study2_trials[:50]] == \
        [OrderPlan(STUDY2, study2_trials, seed=2026).orders(t["trial_id"]) for t in study2_trials[:50]]


def test_small_cells_do_not_all_open_with_the_base_order(study2_trials) -> None:
    """One trial per cell: the seeded start per cell spreads the first listed option over the cells."""
    one_each = list({tuple(STUDY2.condition(t).values()): t for t in study2_trials}.values())
    plan = OrderPlan(STUDY2, one_each, seed=2026)
    assert len({plan.orders(t["trial_id"])["utterance"][0] for t in one_each}) >= 5


def test_fixed_order_and_a_list_with_a_natural_order_stay(study2_trials) -> None:
    fixed = OrderPlan(STUDY2, study2_trials[:20], seed=2026, ordering="fixed")
    assert fixed.orders(study2_trials[0]["trial_id"]) == {} and fixed.circular(8) == []
    trial = STUDY2.load(ROOT / "data" / "study2_sample.csv")[0]
    assert STUDY2.exp1_messages(trial, fixed.layout("main", trial["trial_id"])) == STUDY2.exp1_messages(trial)
    # study 1: yes/no is permutable, the states 0-3 have a natural order and are never reordered
    assert dict(STUDY1.permutable) == {"knowledge": KNOWLEDGE}
    t1 = STUDY1.load(ROOT / "data" / "study1_sample.csv")[0]
    for order in itertools.permutations(KNOWLEDGE):
        qs = {q.name: q for q in STUDY1.exp2_questions(t1, Layout(orders={"knowledge": order}))}
        assert qs["prior"].options == qs["posterior"].options == STATES
        assert qs["prior"].order_of is None and qs["knowledge"].options == order
        assert f"Answer {order[0]} or {order[1]}." in qs["knowledge"].messages[-1]["content"]
        user = STUDY1.exp1_messages(t1, Layout(orders={"knowledge": order}))[1]["content"]
        assert f"Answer {order[0]} or {order[1]}." in user and f"Knowledge: <{order[0]} or {order[1]}>" in user
    with pytest.raises(ValueError, match="fixed or balanced"):
        OrderPlan(STUDY2, [], seed=1, ordering="random")


def test_the_prompt_lists_the_options_in_the_layouts_order() -> None:
    trial = STUDY2.load(ROOT / "data" / "study2_sample.csv")[3]
    order = rotations(base_order(UTTERANCES, 2026, "study2", "utterance"))[5]
    user = STUDY2.exp1_messages(trial, Layout(orders={"utterance": order}))[1]["content"]
    listed = [line[2:] for line in user.splitlines() if line.startswith("- ")]
    assert tuple(listed) == order
    (q,) = STUDY2.exp2_questions(trial, Layout(orders={"utterance": order}))
    assert q.options == order and q.order_of == "utterance"
    assert q.messages[-1]["content"].endswith("Answer with one of: " + ", ".join(f'"{u}"' for u in order) + ".")


def test_exp2_scores_every_rotation_of_a_short_list_and_the_assigned_order_of_a_long_one() -> None:
    trials = STUDY2.load(ROOT / "data" / "study2_sample.csv")
    plan = OrderPlan(STUDY2, trials, seed=2026)
    prompts, ordering = plan.exp2_prompts(trials[0], "main", 8)
    assert ordering == "circular" and [k for _, k in prompts] == list(range(8))
    assert set(positions([q.options for q, _ in prompts]).values()) == {1}, "each option in each position once"
    one, ordering = plan.exp2_prompts(trials[0], "everyday", 4)  # 8 options > 4: the trial's assigned order
    assert ordering == "balanced" and len(one) == 1
    assert one[0][0].options == plan.orders(trials[0]["trial_id"])["utterance"]
    fixed, ordering = OrderPlan(STUDY2, trials, seed=2026, ordering="fixed").exp2_prompts(trials[0], "main", 8)
    assert ordering == "fixed" and [q.messages for q, _ in fixed] == [q.messages for q in STUDY2.exp2_questions(
        trials[0], AS_WRITTEN)]
    t1 = STUDY1.load(ROOT / "data" / "study1_sample.csv")
    asked, _ = OrderPlan(STUDY1, t1, seed=2026).exp2_prompts(t1[0], "main", 8)
    assert [(q.name, k) for q, k in asked] == [("prior", 0), ("posterior", 0), ("knowledge", 0), ("knowledge", 1)]
    assert {q.options for q, _ in asked if q.name == "knowledge"} == {("yes", "no"), ("no", "yes")}


def test_prompt_versions_say_how_the_options_were_ordered() -> None:
    assert STUDY2.version_of("exp1", "main", "fixed") == "study2-exp1-v2" == STUDY2.prompt_version
    assert STUDY2.version_of("exp1", "main", "balanced") == "study2-exp1-v2+balanced"
    assert STUDY2.version_of("exp2", "everyday", "circular") == "study2-exp2-everyday-v1+circular"
    with pytest.raises(ValueError, match="no exp2 prompt variant 'chatty'"):
        STUDY2.version_of("exp2", "chatty", "fixed")


# --- reading the answer whatever the order -----------------------------------------------------------------

@pytest.mark.parametrize("k", range(8))
def test_the_extraction_reads_the_utterance_whatever_the_listed_order(k: int) -> None:
    order = rotations(base_order(UTTERANCES, 2026, "study2", "utterance"))[k]
    chosen = order[(k + 3) % 8]
    echoed = "\n".join(f"- {u}" for u in order)
    for reply in (f"{chosen}\nBecause it is kind.", f"The options are:\n{echoed}\n\nI would say: {chosen}.",
                  f'Ravi would say "{chosen}" rather than "{order[0]}".'):
        got = extract_study2(reply)
        assert got.fields["utterance"] == chosen and got.status == "ok", (reply, got)
    assert extract_study2(echoed).fields["utterance"] is None, "an echoed list is not a choice"


# --- Exp 2: the average over rotations ---------------------------------------------------------------------

def _scored(order: tuple[str, ...], lp_by_position: list[float], bias: dict[str, float] | None = None) -> OptionScores:
    lps = {o: [lp_by_position[i] + (bias or {}).get(o, 0.0)] for i, o in enumerate(order)}
    return score_options("prompt", order, {o: [i] for i, o in enumerate(order)}, lps)


def test_pool_is_the_mean_of_each_options_probability_over_rotations() -> None:
    rots = rotations(("a", "b", "c"))
    scored = [_scored(r, [-1.0, -2.0, -3.0], {"c": 0.9}) for r in rots]
    pooled = pool(scored, ("a", "b", "c"))
    for o in "abc":
        assert pooled.probs[o] == pytest.approx(sum(s.probs[o] for s in scored) / 3)
    assert sum(pooled.probs.values()) == pytest.approx(1.0) and pooled.pooled_over == 3
    assert pooled.options == ["a", "b", "c"] and pooled.argmax == "c" and pooled.prompt == "prompt"
    assert pooled.entropy == pytest.approx(-sum(p * math.log(p) for p in pooled.probs.values()))
    # a pure position preference averages out: every option gets the same mean probability
    flat = pool([_scored(r, [-0.1, -2.0, -3.0]) for r in rots], ("a", "b", "c"))
    assert max(flat.probs.values()) - min(flat.probs.values()) < 1e-12
    with pytest.raises(ValueError, match="not all over the options"):
        pool(scored, ("a", "b"))


# --- position bias -----------------------------------------------------------------------------------------

def _obs(choose, n_trials: int = 48, seed: int = 0) -> Observations:
    rng = np.random.default_rng(seed)
    obs = Observations(UTTERANCES)
    rots = rotations(base_order(UTTERANCES, 2026, "study2", "utterance"))
    for i in range(n_trials):
        order = rots[i % 8]
        w = np.zeros(8)
        w[UTTERANCES.index(choose(order, i, rng))] = 1
        obs.add(list(order), w)
    return obs


def test_position_bias_flags_choices_that_follow_position_and_not_those_that_follow_content() -> None:
    first = measure(_obs(lambda order, i, rng: order[0]))
    assert first[0][0] == 1.0 and first[2] == pytest.approx(7 / 8) and first[3] == 0.0 and first[4] < 0.01
    content = measure(_obs(lambda order, i, rng: "It wasn't bad" if i % 3 else "It was good"))
    assert content[2] < 0.3 < content[3], "choices by content spread evenly over the positions"
    random = measure(_obs(lambda order, i, rng: UTTERANCES[rng.integers(8)], n_trials=400))
    assert random[4] > 0.05, "no position effect beyond chance"
    fixed = Observations(("yes", "no"))
    for _ in range(10):
        fixed.add(["yes", "no"], np.array([1.0, 0.0]))
    assert measure(fixed)[4] is None and "confounded" in measure(fixed)[5]


def test_position_bias_of_a_stage_reads_exp1_orders_and_exp2_rotations() -> None:
    """A constructed stage: Exp 1 always answers the first listed utterance; Exp 2 puts its mass on whatever is
    listed first in each rotation. Both are flagged; their share at position 1 is 1 and 0.72 (the softmax of the
    first position's lead)."""
    trials = STUDY2.load(ROOT / "data" / "study2_sample.csv")
    plan = OrderPlan(STUDY2, trials, seed=2026, replications=3)
    data = StudyData("m", STUDY2, Path("."))
    exp1, extracted, exp2 = {}, {}, {}
    for t in trials:
        for r in range(3):
            order = plan.orders(t["trial_id"], r)["utterance"]
            e1 = Exp1Record(trial_id=t["trial_id"], replicate=r, model="m", model_revision="r", study="study2",
                            prompt_version="v", messages=[], sampling={}, option_order={"utterance": list(order)})
            ex = ExtractedRecord(trial_id=t["trial_id"], replicate=r, model="m", model_revision="r", study="study2",
                                 prompt_version="v", fields={"utterance": order[0]})
            exp1[e1.key], extracted[ex.key] = e1, ex
        rots = [_scored(o, [-0.1] + [-3.0] * 7) for o in plan.rotations("utterance")]
        r2 = Exp2Record(trial_id=t["trial_id"], model="m", model_revision="r", study="study2", prompt_version="v",
                        prompt_variant="everyday", questions={"utterance": pool(rots, UTTERANCES)},
                        rotations={"utterance": rots})
        exp2[r2.key] = r2
    assert variant_key(trials[0]["trial_id"], "everyday") in exp2
    data.records = {"exp1": exp1, "extracted": extracted, "exp2": exp2}
    got = {b.experiment: b for b in position_bias(data)}
    assert got["exp1"].flagged and got["exp1"].by_position[0] == 1.0 and got["exp1"].n == 30
    first = 1 / (1 + 7 * math.exp(-2.9))  # the softmax share of the option listed first, in every rotation
    assert got["exp2"].flagged and got["exp2"].by_position[0] == pytest.approx(first, abs=1e-4) and got["exp2"].n == 80
    assert got["exp2"].records == 10 and got["exp2"].top_position == 1
    assert "follow the listed position" in got["exp1"].detail


# --- config -----------------------------------------------------------------------------------------------

def test_the_config_chooses_variants_and_refuses_unknown_ones(cfg: Config, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    known = ("main", "everyday", "observer")
    assert cfg.experiment("study2", "exp2").chosen_variants(known) == known, "default: every variant in Exp 2"
    assert cfg.experiment("study2", "exp1").chosen_variants(known) == ("main",), "default: the main one in Exp 1"
    exp = ExperimentConfig(study="study2", experiment="exp1", variants=["observer", "main"])
    assert exp.chosen_variants(known) == ("main", "observer")
    with pytest.raises(ConfigError, match="unknown prompt variant 'chatty' of study2"):
        ExperimentConfig(study="study2", experiment="exp1", variants=["chatty"]).chosen_variants(known)
    with pytest.raises(ValueError, match="each once"):
        ExperimentConfig(study="study2", experiment="exp1", variants=["main", "main"])
    assert cfg.experiment("study2", "exp1").option_order == "balanced"
    exps = yaml.safe_load((ROOT / "config" / "experiments.yaml").read_text())
    exps["experiments"][1]["variants"] = ["main", "chatty"]
    (tmp_path / "models.yaml").write_text((ROOT / "config" / "models.yaml").read_text())
    (tmp_path / "experiments.yaml").write_text(yaml.safe_dump(exps))
    assert main(["check-config", "--config-dir", str(tmp_path)]) == 2
    assert "study2/exp1: variants: unknown prompt variant 'chatty' of study2 (known: main, everyday, observer)" in \
        capsys.readouterr().err
