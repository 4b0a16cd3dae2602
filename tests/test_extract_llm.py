"""The LLM stage: structured outputs on the real vLLM server, and the merge that keeps only grounded values."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re

import httpx
import jsonschema
import pytest

from grace.extract import Reply, extract_rows
from grace.extract.engine import _merge
from grace.extract.llm import (
    LLMAnswer,
    ask_many,
    build_payload,
    parse_reply,
    request_regex,
    request_schema,
)
from grace.extract.plugin import Extraction, extraction_of
from grace.serving import Endpoint
from grace.studies.registry import STUDIES
from grace.studies.study1.extraction import grounded as grounded_study1
from grace.studies.study1.rules import extract_study1
from grace.studies.study2.rules import extract_study2
from tests.support.fault_proxy import FaultProxy

PART: dict[str, Extraction] = {name: extraction_of(study) for name, study in STUDIES.items()}


def test_payload_uses_structured_outputs_not_guided_json() -> None:
    p = build_payload(PART["study1"], "reply", "m", 100)
    assert p["structured_outputs"] == {"regex": request_regex(PART["study1"])}
    assert build_payload(PART["study2"], "r", "m", 9, mode="json")["structured_outputs"] == {
        "json": request_schema(PART["study2"])}
    assert "guided_json" not in p and p["temperature"] == 0.0
    assert "reply" in p["messages"][-1]["content"]


@pytest.mark.parametrize(("study", "text"), [
    ("study1", '{"initial_answer":2,"probabilities":[10,20.5,0,69.5],"knowledge":null}'),
    ("study1", '{"initial_answer":null,"probabilities":null,"knowledge":"no"}'),
    ("study2", '{"utterance":"It wasn\'t bad"}'),
])
def test_regex_constraint_yields_schema_json(study: str, text: str) -> None:
    assert re.fullmatch(request_regex(PART[study]), text)
    jsonschema.validate(json.loads(text), request_schema(PART[study]))
    assert not re.fullmatch(request_regex(PART[study]), text.replace(":", ": "))


def test_parse_reply_is_lenient_on_control_characters_and_strict_on_shape() -> None:
    assert parse_reply(PART["study2"], '{"utterance": "It wasn\'t bad"}').model_dump() == {"utterance": "It wasn't bad"}
    assert parse_reply(PART["study1"], '{"initial_answer": 2,\n\t"probabilities": null, "knowledge": "no"}'
                       ).model_dump() == {"initial_answer": 2, "probabilities": None, "knowledge": "no"}
    # a raw control character inside a string (constrained JSON may hold one) is read by the JSON decoder, and
    # the value is then judged by the schema: no study's field admits a tab, so the reply is refused on its shape
    with pytest.raises(ValueError, match="1 validation error"):
        parse_reply(PART["study1"], '{"initial_answer": 2, "probabilities": null, "knowledge": "no\t"}')
    with pytest.raises(ValueError):
        parse_reply(PART["study1"], '{"initial_answer": 7}')
    with pytest.raises(ValueError):
        parse_reply(PART["study2"], '{"utterance": "It was')  # cut by max_tokens


def test_merge_keeps_grounded_values_only() -> None:
    text = "My first guess was two. As for the bets, 0 gets 10 and 1 gets 20, 2 gets 30, 3 gets 40. Yes, he knows."
    rr = extract_study1(text)
    assert set(rr.missing) == {"initial_answer", "probabilities", "knowledge"}
    ans = LLMAnswer({"initial_answer": 2, "probabilities": [10, 20, 30, 40], "knowledge": "yes"})
    res = _merge(PART["study1"], rr, text, ans)
    assert (res.status, res.method) == ("ok", "llm")
    assert res.fields["probabilities"] == pytest.approx({"0": 0.1, "1": 0.2, "2": 0.3, "3": 0.4})
    invented = LLMAnswer({"initial_answer": 2, "probabilities": [5, 5, 45, 45], "knowledge": "yes"})
    res = _merge(PART["study1"], rr, text, invented)
    assert res.fields["initial_answer"] == 2 and res.fields["probabilities"] is None
    short = "My first guess was two. Yes, he knows it."
    res = _merge(PART["study1"], extract_study1(short), short, LLMAnswer({"initial_answer": 3, "knowledge": "yes"}))
    assert res.fields["initial_answer"] is None
    assert any("not found in the reply" in n for n in res.fields["notes"])
    assert res.status == "partial"  # knowledge ("yes") is grounded
    res = _merge(PART["study1"], rr, text, LLMAnswer({"probabilities": [10, 20, 30, 30]}))
    assert res.fields["probabilities"] is None  # an LLM's bets must sum to 100: no normalising of its numbers
    assert any("do not sum to 100%" in n for n in res.fields["notes"])


def test_merge_study2_and_llm_errors() -> None:
    text = "Honestly? Not terrible at all, she would tell him."
    rr = extract_study2(text)
    assert rr.missing == ["utterance"]
    res = _merge(PART["study2"], rr, text, LLMAnswer({"utterance": "It wasn't terrible"}))
    assert (res.fields["utterance"], res.method, res.status) == ("It wasn't terrible", "llm", "ok")
    res = _merge(PART["study2"], rr, text, LLMAnswer({"utterance": "It was amazing"}))
    assert res.fields["utterance"] is None and res.status == "unparseable" and res.method == "rules"
    res = _merge(PART["study2"], rr, text, LLMAnswer(None, "request failed: HTTP 500"))
    assert res.status == "unparseable" and "llm: request failed: HTTP 500" in res.fields["notes"]


def test_grounding_numbers() -> None:
    assert grounded_study1("probabilities", [0.1, 0.2, 0.3, 0.4], "10% 20% 30% 40%")
    assert not grounded_study1("probabilities", [10, 20, 30, 50], "10% 20% 30% 40%")
    assert grounded_study1("initial_answer", 3, "all three of them")
    assert not grounded_study1("initial_answer", 3, "I have no idea")


@pytest.mark.server
def test_structured_outputs_on_the_real_server(toy_server: Endpoint) -> None:
    """The random toy model can only produce schema-shaped JSON under the constraint; unconstrained, it can't."""
    answers = asyncio.run(ask_many(toy_server, PART["study2"], ["It was fine, I guess.", "Not bad at all."],
                                   concurrency=2, max_tokens=40))
    assert all(a.values is not None for a in answers), [a.error for a in answers]
    answers += asyncio.run(ask_many(toy_server, PART["study1"], ["2; 10% 20% 30% 40%; yes"], max_tokens=100))
    for a in answers:
        assert a.values is not None, a.error
        assert set(a.values) in ({"utterance"}, {"initial_answer", "probabilities", "knowledge"})
    free = httpx.post(f"{toy_server.v1}/chat/completions", timeout=120, json={
        "model": toy_server.model, "max_tokens": 40, "temperature": 0.0,
        "messages": [{"role": "user", "content": "Answer in JSON."}]}).json()
    with pytest.raises(ValueError):
        parse_reply(PART["study2"], free["choices"][0]["message"]["content"])


# What the extraction model is made to answer, per reply: the proxy narrows each request's regex constraint to
# exactly this JSON, so the real server (constrained decoding on the random toy model) must produce it.
FORCED = {
    "The speaker saw two": '{"initial_answer":2,"probabilities":[10,20,30,40],"knowledge":"no"}',
    "Initial Answer: 1\nInitial Answer: 3": '{"initial_answer":3,"probabilities":null,"knowledge":"yes"}',
}


def force_answer(path: str, body: bytes) -> bytes:
    payload = json.loads(body)
    if "structured_outputs" not in payload:
        return body
    reply = payload["messages"][-1]["content"]
    (answer,) = [a for key, a in FORCED.items() if key in reply]
    payload["structured_outputs"] = {"regex": re.escape(answer)}
    return json.dumps(payload).encode()


@pytest.mark.server
def test_extract_rows_with_llm_stage(toy_server: Endpoint) -> None:
    """The LLM's answers reach the records through the grounding check: values the reply states are kept, the
    others dropped with a note, and a conflict the rules found is never resolved by the LLM."""
    replies = [Reply("Initial Answer: 2\nProbabilities: 0: 10%, 1: 20%, 2: 30%, 3: 40%\nKnowledge: yes"),
               Reply("The speaker saw two, so I guess 2 and he does not know."),
               Reply("Initial Answer: 1\nInitial Answer: 3"),
               Reply("")]
    with FaultProxy(toy_server.base_url, rewrite=force_answer) as proxy:
        out, summary = extract_rows(PART["study1"], replies, dataclasses.replace(toy_server, base_url=proxy.url),
                                    concurrency=4, max_tokens=120)
        asked = proxy.forwarded["/v1/chat/completions#structured"]
    assert summary.llm_requests == asked == 2  # the clean reply and the empty one are not sent
    assert out[0].status == "ok" and out[0].method == "rules"
    assert out[3].status == "unparseable"
    said = out[1].fields
    assert (out[1].method, out[1].status) == ("llm", "partial")
    assert (said["initial_answer"], said["knowledge"], said["probabilities"]) == (2, "no", None)
    assert "llm: probabilities [10.0, 20.0, 30.0, 40.0] not found in the reply (dropped)" in said["notes"]
    conflict = out[2].fields
    assert (out[2].method, out[2].status) == ("rules", "unparseable")
    assert conflict["initial_answer"] is None  # the LLM said 3: a conflict is never resolved by the LLM
    assert conflict["knowledge"] is None
    assert "llm: knowledge 'yes' not found in the reply (dropped)" in conflict["notes"]
    json.dumps([r.fields for r in out])
