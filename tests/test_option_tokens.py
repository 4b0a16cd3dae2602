"""Option tokenization in context with real vocabularies, offline: Llama-3's (quicktok-v1, with Llama-3.1's chat
template in a local transformers tokenizer) through Grace's own Exp 2 tokenization (grace.scoring.tokenize).
GPT-OSS's is in tests/test_harmony.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from grace.config import Config
from grace.paths import cache_dir
from grace.scoring.tokenize import encode_question
from grace.scoring.vocab import quicktok_encoding
from grace.studies.registry import get_study
from grace.studies.study2 import UTTERANCES
from tests.support.templates import LLAMA31
from tests.support.vocab import saved_tokenizer

HEADER = "<|start_header_id|>assistant<|end_header_id|>\n\n"


@pytest.fixture(scope="module")
def llama3() -> Any:  # a transformers tokenizer
    tok = saved_tokenizer("llama3", cache_dir() / "vocab" / "llama3-instruct", LLAMA31,
                          bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
    assert len(tok) == 128_256 and tok.convert_tokens_to_ids("<|eot_id|>") == 128009
    return tok


def questions(cfg: Config, study: str) -> list:
    s = get_study(study)
    trial = s.load(cfg.study_file(study, sample=True), limit=1)[0]
    return s.exp2_questions(trial)


def test_converted_vocabulary_agrees_with_quicktok(cfg: Config, llama3: Any) -> None:
    qt = quicktok_encoding("llama3")
    texts = [m["content"] for st in ("study1", "study2") for q in questions(cfg, st) for m in q.messages]
    texts += ["It wasn't   amazing!!\n\n  ok 1234567", "naïve café — “quotes”", " 0", "yes"]
    for t in texts:
        assert llama3(t, add_special_tokens=False)["input_ids"] == qt.encode(t)


def test_llama3_prompt_and_options(cfg: Config, llama3: Any) -> None:
    prior, posterior, knowledge = (encode_question(llama3, q) for q in questions(cfg, "study1"))
    for enc in (prior, posterior, knowledge):
        assert enc.prompt.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                                     "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n")
        assert enc.prompt.endswith(HEADER) and enc.boundary_fallback == ()
        assert llama3.decode(list(enc.prompt_ids[-4:])) == HEADER
    for d in "0123":
        ids = prior.option_ids[d]
        assert len(ids) == 1 and llama3.decode(ids) == d
    for word in ("yes", "no"):
        ids = knowledge.option_ids[word]
        assert len(ids) == 1 and llama3.decode(ids) == word  # no leading space after the header
        assert ids == quicktok_encoding("llama3").encode(word)
    (utt,) = (encode_question(llama3, q) for q in questions(cfg, "study2"))
    qt = quicktok_encoding("llama3")
    for u in UTTERANCES:
        assert utt.option_ids[u] == qt.encode(u) and llama3.decode(utt.option_ids[u]) == u
    assert len({tuple(v) for v in utt.option_ids.values()}) == len(UTTERANCES)


def test_llama3_end_of_turn_is_the_configured_stop(cfg: Config, llama3: Any) -> None:
    assert cfg.model("llama3.1-8b").stop_token_ids == [llama3.convert_tokens_to_ids("<|eot_id|>")]
    assert Path(cache_dir() / "vocab" / "llama3-instruct" / "tokenizer.json").is_file()
