"""Pure parts of the model-family handling: folding the system text, reading reasoning replies, the
sampling a reasoning model gets. The reply shapes are vLLM 0.32's chat completion bodies."""

from __future__ import annotations

from grace.chat import adapt, fold_system, versioned
from grace.config import Reasoning, load_config
from grace.query import classify, reasoning_of, sampling_payload
from grace.serving import Endpoint
from tests.conftest import ROOT

SYSTEM = {"role": "system", "content": "Be a participant."}
USER = {"role": "user", "content": "How many?"}


def test_fold_puts_the_system_text_at_the_start_of_the_first_user_turn() -> None:
    folded = fold_system([SYSTEM, USER, {"role": "assistant", "content": "2"}, {"role": "user", "content": "Sure?"}])
    assert folded == [{"role": "user", "content": "Be a participant.\n\nHow many?"},
                      {"role": "assistant", "content": "2"}, {"role": "user", "content": "Sure?"}]
    assert fold_system([USER]) == [USER]
    assert fold_system([SYSTEM]) == [{"role": "user", "content": "Be a participant."}]
    original = [SYSTEM, USER]
    assert adapt(original, "native") == original and adapt(original, "native") is not original
    assert original == [SYSTEM, USER]  # never changed in place
    assert versioned("study1-exp1-v2", "fold") == "study1-exp1-v2+fold"
    assert versioned("study1-exp1-v2", "native") == "study1-exp1-v2"


def test_reasoning_replies_are_read_under_both_field_names() -> None:
    assert reasoning_of({"content": "2", "reasoning": "Count them."}) == "Count them."
    assert reasoning_of({"content": "2", "reasoning_content": "Count them."}) == "Count them."  # older vLLM
    assert reasoning_of({"content": "2", "reasoning": None, "reasoning_content": None}) is None


def test_a_reply_cut_during_its_reasoning_is_not_an_answer() -> None:
    assert classify(None, "length", "We need to count the") == "reasoning_truncated"
    assert classify("", "length", "We need") == "reasoning_truncated"
    assert classify(None, "length") == "empty"  # no reasoning: a plain model that said nothing
    assert classify("Initial Answer: 2", "length", "thought") == "truncated"
    assert classify("Initial Answer: 2", "stop", "thought") == "ok"


def test_a_reasoning_model_gets_its_effort_and_a_budget_for_both_parts() -> None:
    cfg = load_config(ROOT / "config")
    exp = cfg.experiment("study2", "exp1")
    plain = Endpoint("http://x", "m")
    assert "reasoning_effort" not in sampling_payload(exp, 0, plain)
    assert sampling_payload(exp, 0, plain)["max_tokens"] == exp.sampling.max_tokens
    thinker = Endpoint("http://x", "m", reasoning=Reasoning(effort="medium", start_date="2026-01-15", max_tokens=3000))
    payload = sampling_payload(exp, 0, thinker)
    assert payload["reasoning_effort"] == "medium" and payload["max_tokens"] == 3000
    oss = cfg.model("gpt-oss-20b")
    assert oss.reasoning is not None and oss.reasoning.format == "harmony"
    assert oss.reasoning.max_tokens > max(e.sampling.max_tokens for e in cfg.experiments)
