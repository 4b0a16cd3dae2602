"""Pure Exp 2 helpers: option distributions, the option trie, response parsing; and tokenization in context."""

from __future__ import annotations

import math

import pytest

from grace.scoring.errors import ScoringError
from grace.scoring.logprobs import (
    argmax,
    entropy,
    gather_from_nodes,
    logsumexp,
    score_options,
    softmax,
    trie_nodes,
)
from grace.scoring.server import MAX_TOKEN_IDS, choices_in_order, parse_prompt_logprobs, waves
from grace.scoring.tokenize import encode_question, load_tokenizer
from grace.studies import Question
from grace.studies.registry import STUDIES
from grace.studies.study2 import UTTERANCES
from tests.support.scoring import parse_next_token


def test_softmax_sums_to_one_and_matches_hand_computation() -> None:
    p = softmax({"a": math.log(1), "b": math.log(3)})
    assert p["a"] == pytest.approx(0.25) and p["b"] == pytest.approx(0.75)
    big = softmax({"x": -1000.0, "y": -1001.0, "z": -5000.0})  # no underflow to 0/0
    assert sum(big.values()) == pytest.approx(1, abs=1e-12)
    assert big["x"] / big["y"] == pytest.approx(math.e)
    assert logsumexp([0.0, 0.0]) == pytest.approx(math.log(2))


def test_entropy_and_argmax() -> None:
    assert entropy({"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25}) == pytest.approx(math.log(4))
    assert entropy({"a": 1.0, "b": 0.0}) == 0.0
    assert argmax({"a": -2.0, "b": -1.0, "c": -1.5}) == "b"
    assert argmax({"a": -1.0, "b": -1.0}) == "a"  # ties: the first in option order


def test_score_options_sum_and_length_normalised() -> None:
    ids = {"It was bad": [1, 2, 3], "It wasn't bad": [1, 4, 5, 3]}
    lps = {"It was bad": [-1.0, -2.0, -3.0], "It wasn't bad": [-1.0, -1.0, -1.0, -1.5]}
    s = score_options("P", list(ids), ids, lps)
    assert s.logprobs == {"It was bad": -6.0, "It wasn't bad": -4.5}
    assert sum(s.probs.values()) == pytest.approx(1, abs=1e-9)
    assert s.probs["It wasn't bad"] == pytest.approx(1 / (1 + math.exp(-1.5)))
    # length-normalised: means -2.0 and -1.125
    assert s.probs_norm["It wasn't bad"] == pytest.approx(1 / (1 + math.exp(-0.875)))
    assert s.argmax == "It wasn't bad" and s.argmax_norm == "It wasn't bad"
    assert s.entropy == pytest.approx(entropy(s.probs))


@pytest.mark.parametrize("bad", [[-1.0, float("nan"), -1.0], [-1.0, float("-inf"), -2.0], [-1.0, -2.0], [0.5, -1, -1]])
def test_invalid_logprobs_are_an_error_not_a_zero(bad: list[float]) -> None:
    ids = {"a": [1, 2, 3], "b": [4]}
    with pytest.raises(ScoringError) as e:
        score_options("P", ["a", "b"], ids, {"a": bad, "b": [-1.0]})
    assert e.value.status == "no_logprobs"


def test_trie_single_token_options_need_one_read() -> None:
    nodes = trie_nodes({"0": [32], "1": [33], "2": [34], "3": [35]})
    assert nodes == {(): [32, 33, 34, 35]}


def test_trie_study2_shape_and_gather() -> None:
    ids = {"It was bad": [10, 11, 20], "It was good": [10, 11, 21], "It wasn't bad": [10, 12, 13, 20]}
    nodes = trie_nodes(ids)
    assert nodes == {(): [10], (10,): [11, 12], (10, 11): [20, 21], (10, 12): [13], (10, 12, 13): [20]}
    reads = {p: {t: -float(t) / 10 - len(p) for t in c} for p, c in nodes.items()}
    got = gather_from_nodes(ids, reads)
    assert got["It wasn't bad"] == [-1.0, -2.2, -3.3, -5.0]
    del reads[(10, 12, 13)]
    with pytest.raises(ScoringError, match="no log-probability"):
        gather_from_nodes(ids, reads)


def test_parse_next_token_by_id_and_failures() -> None:
    ok = {"choices": [{"logprobs": {"top_logprobs": [{"token_id:198": -1.0, "token_id:32": -2.5}]}}]}
    assert parse_next_token(ok, [32]) == {32: -2.5}
    for data in ({"choices": [{"logprobs": None}]}, {"choices": []}, {}):
        with pytest.raises(ScoringError) as e:
            parse_next_token(data, [32])
        assert e.value.status == "no_logprobs"
    with pytest.raises(ScoringError, match="keyed by text"):
        parse_next_token({"choices": [{"logprobs": {"top_logprobs": [{"0": -1.0}]}}]}, [32])
    with pytest.raises(ScoringError, match="no log-probability for tokens"):
        parse_next_token(ok, [33])


def test_waves_roots_first_then_every_deeper_node_in_one_request() -> None:
    study1 = [trie_nodes({"0": [32], "1": [33]}), trie_nodes({"yes": [40], "no": [41]})]
    assert waves(study1) == [[[(0, (), [32, 33]), (1, (), [40, 41])]]]
    study2 = [trie_nodes({"It was bad": [10, 11, 20], "It was good": [10, 11, 21], "It wasn't bad": [10, 12, 13, 20]})]
    first, second = waves(study2)
    assert first == [[(0, (), [10])]]
    assert second == [[(0, (10,), [11, 12]), (0, (10, 11), [20, 21]), (0, (10, 12), [13]), (0, (10, 12, 13), [20])]]


def test_waves_split_where_one_request_would_ask_for_too_many_tokens() -> None:
    wide = [trie_nodes({str(i): [1000 * q + i] for i in range(50)}) for q in range(4)]
    (wave,) = waves(wide)
    assert [len(g) for g in wave] == [2, 2]
    for group in wave:
        assert len({t for _, _, c in group for t in c}) <= MAX_TOKEN_IDS
    assert sorted(q for g in wave for q, _, _ in g) == [0, 1, 2, 3]


def test_choices_in_order_by_index_and_count() -> None:
    data = {"choices": [{"index": 1, "x": "b"}, {"index": 0, "x": "a"}]}
    assert [c["x"] for c in choices_in_order(data, 2)] == ["a", "b"]
    for bad in ({"choices": [{"index": 0}]}, {"choices": [{"index": 0}, {"index": 0}]}, {}):
        with pytest.raises(ScoringError) as e:
            choices_in_order(bad, 2)
        assert e.value.status == "no_logprobs"


def test_parse_prompt_logprobs() -> None:
    rows = [None, {"5": {"logprob": -3.0}}, {"7": {"logprob": -0.5}, "8": {"logprob": -0.1}}]
    assert parse_prompt_logprobs({"choices": [{"prompt_logprobs": rows}]}, 1, [5, 7]) == [-3.0, -0.5]
    with pytest.raises(ScoringError) as e:
        parse_prompt_logprobs({"choices": [{"prompt_logprobs": None}]}, 1, [5, 7])
    assert e.value.status == "no_logprobs"


# --- tokenization in context (the toy model's tokenizer: SmolLM2's BPE and chat template) ---------------

@pytest.fixture(scope="module")
def tok(cfg):  # type: ignore[no-untyped-def]
    return load_tokenizer(cfg.model("toy"))


def test_prompt_ends_with_generation_prompt_and_options_follow(cfg, tok) -> None:  # type: ignore[no-untyped-def]
    for study in STUDIES.values():
        trial = study.load(cfg.study_file(study.name, sample=True))[0]
        for q in study.exp2_questions(trial):
            eq = encode_question(tok, q)
            assert eq.prompt.endswith("<|im_start|>assistant\n")
            assert list(eq.prompt_ids) == tok(eq.prompt, add_special_tokens=False)["input_ids"]
            for opt, ids in eq.option_ids.items():
                assert ids and tok.decode(ids) == opt
                assert tok(eq.prompt + opt, add_special_tokens=False)["input_ids"] == [*eq.prompt_ids, *ids]
            assert eq.boundary_fallback == ()
    q2 = STUDIES["study2"].exp2_questions(STUDIES["study2"].load(cfg.study_file("study2", sample=True))[0])[0]
    assert [len(v) for v in encode_question(tok, q2).option_ids.values()] == [3, 3, 3, 3, 4, 4, 4, 4]
    assert q2.options == UTTERANCES


def test_bpe_boundary_merge_falls_back_and_is_recorded(tok) -> None:  # type: ignore[no-untyped-def]
    # The prompt ends with "\n"; an option starting with "\n\n" merges with it in context.
    q = Question("q", [{"role": "user", "content": "hi"}], ("\n\nyes", "no"))
    eq = encode_question(tok, q)
    assert eq.boundary_fallback == ("\n\nyes",)
    assert eq.option_ids["\n\nyes"] == tok("\n\nyes", add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("options,match", [(("yes", ""), "tokenizes to nothing"), (("yes", "yes"), "listed twice")])
def test_bad_options_are_named(tok, options, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ScoringError, match=match) as e:
        encode_question(tok, Question("q", [{"role": "user", "content": "hi"}], options))
    assert e.value.status == "bad_option"
