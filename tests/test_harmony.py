"""Harmony rendering for Exp 2 (grace.scoring.harmony) with GPT-OSS's real vocabulary, offline: the prompt is
the one vLLM 0.32's own functions render (checked by running them in the server's venv), the final-channel
header follows the generation prompt, and the study's options tokenize as expected after it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from grace.config import Config
from grace.scoring.harmony import FINAL_HEADER, HarmonyRenderer
from grace.scoring.vocab import O200K_FILE, O200K_SHA256, quicktok_encoding, tiktoken_dir
from grace.studies.registry import get_study
from grace.studies.study2 import UTTERANCES

ROOT = Path(__file__).resolve().parent.parent
DATE = "2026-01-15"

# vLLM 0.32's chat-completions path for harmony models, minus tools (renderers/online_renderer.py
# _make_request_with_harmony), run by the server's own interpreter; vllm.envs reads the variables at each use.
VLLM_RENDER = """
import json, os, sys
from vllm.entrypoints.openai.parser.harmony_utils import (
    build_harmony_preamble, extract_instructions_from_messages, parse_chat_inputs_to_harmony_messages,
    render_for_completion)
req = json.load(sys.stdin)
out = []
for case in req["cases"]:
    os.environ["VLLM_GPT_OSS_HARMONY_SYSTEM_INSTRUCTIONS"] = str(int(case["system_instructions"]))
    rendered = []
    for chat in req["chats"]:
        instructions, rest = extract_instructions_from_messages(chat)
        msgs = build_harmony_preamble(instructions=instructions, tools=None, reasoning_effort=case["effort"],
                                      with_custom_tools=False)
        msgs.extend(parse_chat_inputs_to_harmony_messages(rest))
        rendered.append(render_for_completion(msgs))
    out.append(rendered)
print(json.dumps(out))
"""
CASES = [{"effort": e, "system_instructions": s} for e in ("low", "high", None) for s in (False, True)]


@pytest.fixture(scope="module")
def vllm_rendered(study_chats: list[list[dict]]) -> list[list[list[int]]]:
    """vLLM's own prompt ids for every case x chat (one interpreter start: importing vLLM takes a while)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "TIKTOKEN_ENCODINGS_BASE")}
    env |= {"VLLM_SYSTEM_START_DATE": DATE, "VLLM_NO_USAGE_STATS": "1", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([str(ROOT / ".grace" / "vllm-venv" / "bin" / "python"), "-c", VLLM_RENDER],
                         input=json.dumps({"chats": study_chats, "cases": CASES}), capture_output=True, text=True,
                         env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def study_chats(cfg: Config) -> list[list[dict]]:
    chats = []
    for name in ("study1", "study2"):
        study = get_study(name)
        trial = study.load(cfg.study_file(name, sample=True), limit=1)[0]
        chats += [q.messages for q in study.exp2_questions(trial)]
        chats.append(study.exp1_messages(trial))
    chats.append([{"role": "user", "content": "No system message here."}])
    chats.append([{"role": "system", "content": "S."}, {"role": "user", "content": "Q1"},
                  {"role": "assistant", "content": "A1", "reasoning": "thinking"}, {"role": "user", "content": "Q2"}])
    return chats


def test_vocabulary_folder_is_the_pinned_file(tmp_path: Path) -> None:
    folder = tiktoken_dir(tmp_path / "tk")
    data = (folder / O200K_FILE).read_bytes()
    assert hashlib.sha256(data).hexdigest() == O200K_SHA256
    assert len(data.splitlines()) == 199_998  # o200k's ordinary tokens; the special ones are the encoding's
    (folder / O200K_FILE).write_bytes(data[:1000])  # a damaged file is rebuilt, not trusted
    assert hashlib.sha256((tiktoken_dir(folder) / O200K_FILE).read_bytes()).hexdigest() == O200K_SHA256


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['effort']}-sys{int(c['system_instructions'])}")
def test_prompt_is_what_vllm_renders(study_chats: list[list[dict]], vllm_rendered: list[list[list[int]]],
                                     case: dict) -> None:
    r = HarmonyRenderer(case["effort"], DATE, system_instructions=case["system_instructions"])
    assert [r.generation_prompt_ids(c) for c in study_chats] == vllm_rendered[CASES.index(case)]


def test_final_channel_prompt(cfg: Config) -> None:
    study = get_study("study1")
    trial = study.load(cfg.study_file("study1", sample=True), limit=1)[0]
    q = study.exp2_questions(trial)[0]
    r = HarmonyRenderer.for_model(cfg.model("gpt-oss-20b"), "a100")
    assert (r.effort, r.start_date) == ("low", cfg.model("gpt-oss-20b").reasoning.start_date)
    ids = r.prompt_ids(q.messages)
    text = r.decode(ids)
    assert text.endswith("<|start|>assistant<|channel|>final<|message|>")
    assert ids[-3:] == r.encode(FINAL_HEADER) and len(r.encode(FINAL_HEADER)) == 3
    system, developer, user = text.split("<|end|>")[:3]
    assert system.startswith("<|start|>system<|message|>")
    assert f"Current date: {r.start_date}" in system and "Reasoning: low" in system
    # the study's system text is the developer message's instructions (vLLM's default), not the system message
    assert developer == f"<|start|>developer<|message|># Instructions\n\n{q.messages[0]['content']}"
    assert q.messages[0]["content"] not in system
    assert user == f"<|start|>user<|message|>{q.messages[1]['content']}"
    # with VLLM_GPT_OSS_HARMONY_SYSTEM_INSTRUCTIONS=1 it joins the model identity instead
    moved = HarmonyRenderer("low", r.start_date, system_instructions=True).decode(
        HarmonyRenderer("low", r.start_date, system_instructions=True).prompt_ids(q.messages))
    assert "<|start|>developer" not in moved and f"OpenAI.\n{q.messages[0]['content']}" in moved


def test_final_header_is_how_a_final_answer_is_rendered() -> None:
    """The header Exp 2 appends is what the model writes before a final answer (as harmony renders one)."""
    from openai_harmony import Conversation, Message, Role

    from grace.scoring.harmony import encoding

    r = HarmonyRenderer("low", DATE)
    chat = [{"role": "system", "content": "S."}, {"role": "user", "content": "Q"}]
    msgs = [*r.messages(chat), Message.from_role_and_content(Role.ASSISTANT, "2").with_channel("final")]
    full = list(encoding().render_conversation(Conversation.from_messages(msgs)))
    prompt = r.prompt_ids(chat)
    assert full[:len(prompt)] == prompt and r.decode(full[len(prompt):]) == "2<|end|>"


def test_options_after_the_final_header(cfg: Config) -> None:
    r = HarmonyRenderer("low", DATE)
    qt = quicktok_encoding("o200k_harmony")  # an independent tokenizer of the same vocabulary
    study1 = get_study("study1")
    trial = study1.load(cfg.study_file("study1", sample=True), limit=1)[0]
    prior, _, knowledge = (r.encode_question(q) for q in study1.exp2_questions(trial))
    for d in "0123":
        assert len(prior.option_ids[d]) == 1 and r.decode(prior.option_ids[d]) == d
    for word in ("yes", "no"):
        ids = knowledge.option_ids[word]
        assert len(ids) == 1 and r.decode(ids) == word  # no leading space after <|message|>
        assert ids == qt.encode(word)
    study2 = get_study("study2")
    trial2 = study2.load(cfg.study_file("study2", sample=True), limit=1)[0]
    (utt,) = (r.encode_question(q) for q in study2.exp2_questions(trial2))
    assert utt.prompt.endswith(FINAL_HEADER)
    for u in UTTERANCES:
        assert utt.option_ids[u] == qt.encode(u) and r.decode(utt.option_ids[u]) == u
    assert len({tuple(v) for v in utt.option_ids.values()}) == len(UTTERANCES)
    # the recorded prompt text re-encodes to exactly the scored prompt ids
    assert r.encode(utt.prompt) == list(utt.prompt_ids)


def test_for_model_refuses_a_model_without_harmony(cfg: Config) -> None:
    with pytest.raises(ValueError, match="no `reasoning: {format: harmony}` block"):
        HarmonyRenderer.for_model(cfg.model("llama3.1-8b"))
    with pytest.raises(ValueError, match="not one of low, medium, high"):
        HarmonyRenderer("max", DATE)
