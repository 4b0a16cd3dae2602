"""Tiny models of two study families on the real vLLM CPU server (scripts/make_models.py): GPT-OSS (harmony,
scripted weights: the server's prompt is Grace's rendering, the reasoning arrives in its own field, a reply can
be cut inside it, and the options carry their mass only after the final-channel header) and Gemma-2 (random
weights; its chat template rejects the system role)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from grace.checkpoint import Checkpoint
from grace.cli import main
from grace.config import Config, Retry
from grace.query import run_exp1
from grace.records import Exp1Record, Exp2Record
from grace.scoring.engine import build_questions, run_exp2
from grace.scoring.harmony import FINAL_HEADER, HarmonyRenderer
from grace.scoring.server import Counter, score_trie
from grace.serving import Endpoint, LocalVLLMServer
from grace.studies.registry import get_study


@pytest.fixture(scope="module")
def gptoss_server(cfg: Config) -> Iterator[Endpoint]:
    with LocalVLLMServer(cfg.model("gptoss-tiny"), run_id="pytest-gptoss", start_timeout_s=600) as ep:
        yield ep


def chat(ep: Endpoint, body: dict) -> httpx.Response:
    return httpx.post(f"{ep.v1}/chat/completions", json={"model": ep.model, **body}, timeout=120)


def test_harmony_server_prompt_is_graces_rendering(cfg: Config, gptoss_server: Endpoint) -> None:
    model = cfg.model("gptoss-tiny")
    renderer = HarmonyRenderer.for_model(model, "local")
    study = get_study("study1")
    trial = study.load(cfg.study_file("study1", sample=True), limit=1)[0]
    for messages in (study.exp1_messages(trial), study.exp2_questions(trial)[2].messages):
        r = chat(gptoss_server, {"messages": messages, "max_tokens": 4, "temperature": 0,
                                 "reasoning_effort": model.reasoning.effort, "return_token_ids": True})
        assert r.status_code == 200, r.text
        body = r.json()
        # the server wrote the configured date (VLLM_SYSTEM_START_DATE from the reasoning block), not today's
        assert body["prompt_token_ids"] == renderer.generation_prompt_ids(messages)
        msg = body["choices"][0]["message"]
        assert "reasoning" in msg and "content" in msg  # vLLM 0.32 names the analysis text `reasoning`
        assert "reasoning_tokens" in (body["usage"].get("completion_tokens_details") or {})


def test_harmony_reasoning_fields_and_a_reply_cut_inside_the_analysis(cfg: Config, gptoss_server: Endpoint) -> None:
    model = cfg.model("gptoss-tiny")
    messages = [{"role": "system", "content": "Answer with a number."}, {"role": "user", "content": "How many?"}]
    body = {"messages": messages, "temperature": 0, "reasoning_effort": model.reasoning.effort}
    full = chat(gptoss_server, {**body, "max_tokens": model.reasoning.max_tokens}).json()
    choice = full["choices"][0]
    assert choice["message"]["reasoning"] == "think" and choice["message"]["content"] == "2"
    assert "reasoning_content" not in choice["message"]  # vLLM 0.32: `reasoning` only
    assert choice["finish_reason"] == "stop"
    usage = full["usage"]
    assert usage["completion_tokens"] == 12 and usage["completion_tokens_details"]["reasoning_tokens"] == 1
    cut = chat(gptoss_server, {**body, "max_tokens": 4}).json()["choices"][0]  # ends inside the analysis
    assert cut["message"]["content"] is None and cut["message"]["reasoning"] == "think"
    assert cut["finish_reason"] == "length"


def test_harmony_exp2_reads_at_the_final_header(cfg: Config, gptoss_server: Endpoint) -> None:
    renderer = HarmonyRenderer.for_model(cfg.model("gptoss-tiny"), "local")
    study = get_study("study1")
    trial = study.load(cfg.study_file("study1", sample=True), limit=1)[0]
    encoded = [renderer.encode_question(q) for q in study.exp2_questions(trial)]
    assert all(e.prompt.endswith(FINAL_HEADER) for e in encoded)
    lps = asyncio.run(_score(gptoss_server, encoded))
    scores = build_questions(encoded, lps)["prior"]
    assert scores.prompt.endswith(FINAL_HEADER) and math.isclose(sum(scores.probs.values()), 1.0, abs_tol=1e-6)
    mass = sum(math.exp(v) for v in scores.logprobs.values())  # before renormalising
    assert mass > 0.9 and scores.probs["2"] > 0.99
    # the same options read right after the generation prompt carry almost no mass: the model writes a header
    at_prompt = dataclasses.replace(encoded[0], prompt_ids=tuple(renderer.generation_prompt_ids(
        study.exp2_questions(trial)[0].messages)))
    (lp,) = asyncio.run(_score(gptoss_server, [at_prompt]))
    assert sum(math.exp(sum(v)) for v in lp.values()) < 1e-6


async def _score(ep: Endpoint, encoded: list) -> list[dict[str, list[float]]]:
    async with httpx.AsyncClient(timeout=120) as client:
        return await score_trie(client, ep, encoded, Retry(attempts=2), Counter())


def test_gemma2_rejects_the_system_role_and_takes_it_folded(gemma2_server: Endpoint) -> None:
    system = {"role": "system", "content": "Answer briefly."}
    user = {"role": "user", "content": "How many?"}
    r = chat(gemma2_server, {"messages": [system, user], "max_tokens": 4})
    assert r.status_code == 400 and "System role not supported" in r.text
    folded = {"role": "user", "content": f"{system['content']}\n\n{user['content']}"}
    r = chat(gemma2_server, {"messages": [folded], "max_tokens": 4, "return_token_ids": True})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] is not None


def test_grace_records_a_harmony_models_reasoning_and_its_final_answer(
        cfg: Config, gptoss_server: Endpoint, tmp_path: Path) -> None:
    """Grace's own stages on the harmony model: Exp 1 keeps the reasoning apart from the answer and names a reply
    cut inside its reasoning; Exp 2 scores at the final-channel header (the renderer the endpoint selects);
    preflight passes and proves the chat endpoint's prompt is the one Exp 2 scores."""
    study = get_study("study1")
    trials = study.load(cfg.study_file("study1", sample=True), limit=3)
    exp = cfg.experiment("study1", "exp1")
    res = asyncio.run(run_exp1(gptoss_server, study, trials, exp, tmp_path / "ok"))
    recs = Checkpoint(tmp_path / "ok" / "exp1.jsonl", Exp1Record).load()
    assert res.ok == 3 and {r.response for r in recs.values()} == {"2"}
    assert {r.reasoning for r in recs.values()} == {"think"} and {r.reasoning_tokens for r in recs.values()} == {1}
    assert all(r.sampling["reasoning_effort"] == "low" for r in recs.values())
    tight = dataclasses.replace(gptoss_server, reasoning=cfg.model("gptoss-tiny").reasoning.model_copy(
        update={"max_tokens": 4}))
    small = exp.model_copy(update={"sampling": exp.sampling.model_copy(update={"max_tokens": 4})})
    cut = asyncio.run(run_exp1(tight, study, trials, small, tmp_path / "cut"))
    assert cut.ok == 0 and cut.other == {"reasoning_truncated": 3}  # not counted as an answer
    scored = asyncio.run(run_exp2(gptoss_server, study, trials, cfg.experiment("study1", "exp2"), tmp_path / "e2"))
    assert scored.ok == 3
    for rec in Checkpoint(tmp_path / "e2" / "exp2.jsonl", Exp2Record).load().values():
        prior = rec.questions["prior"]
        assert prior.prompt.endswith(FINAL_HEADER) and prior.option_mass > 0.9 and prior.argmax == "2"
    assert main(["preflight", "--model", "gptoss-tiny", "--endpoint", gptoss_server.base_url,
                 "--out", str(tmp_path / "pf")]) == 0
    report = json.loads((tmp_path / "pf" / "preflight.json").read_text())
    same = next(c for c in report["checks"] if c["name"] == "same prompt")
    assert same["passed"] and "token for token" in same["detail"]
