"""Real vocabularies offline, from the PyPI package `quicktok-v1`: GPT-OSS's o200k (with the harmony special
tokens) and Llama-3's.

- `tiktoken_dir()`: the folder openai-harmony reads through TIKTOKEN_ENCODINGS_BASE, holding
  `o200k_base.tiktoken` rebuilt from quicktok's file and checked against the sha256 openai-harmony pins (it
  would otherwise download the file; pods and this machine cannot). The runner image bakes one in
  (docker/Dockerfile: `python -m grace.scoring.vocab --out DIR`).
- `hf_tokenizer()`: a transformers fast tokenizer with one of those vocabularies (and a chat template), the way
  tiktoken vocabularies are converted for the hub (byte-level BPE, the encoding's split pattern, its special
  tokens at their ids): the tiny harmony model's tokenizer (scripts/make_models.py) and the Llama-3 tests'
  (tests/support/vocab.py saves one).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
from pathlib import Path
from typing import Any

from grace.paths import cache_dir

O200K_FILE = "o200k_base.tiktoken"
# The sha256 openai-harmony 0.0.8 pins for o200k_base.tiktoken (it refuses any other file).
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"

# tiktoken's split patterns (tiktoken_ext/openai_public.py): o200k for GPT-OSS; cl100k's, which Llama-3 uses.
O200K_PATTERN = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])
LLAMA3_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                  r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
PATTERNS = {"o200k_harmony": O200K_PATTERN, "o200k_base": O200K_PATTERN, "llama3": LLAMA3_PATTERN}


def quicktok_encoding(name: str) -> Any:
    import quicktok

    return quicktok.get_encoding(name)


def _ranks(name: str) -> tuple[dict[bytes, int], list[tuple[int, str]]]:
    """The encoding's mergeable ranks and its special tokens (id, text), in id order."""
    enc = quicktok_encoding(name)
    ranks: dict[bytes, int] = {}
    specials: list[tuple[int, str]] = []
    for i in range(enc.n_vocab):
        if enc.is_special_token(i):
            specials.append((i, enc.decode_single_token_bytes(i).decode()))
        else:
            ranks[enc.decode_single_token_bytes(i)] = i
    return ranks, specials


def o200k_tiktoken_bytes() -> bytes:
    """`o200k_base.tiktoken` as tiktoken publishes it: one `base64(token) rank` line per ordinary token."""
    enc = quicktok_encoding("o200k_base")
    lines = []
    for rank in range(enc.n_vocab):
        if enc.is_special_token(rank):
            break
        try:
            token = enc.decode_single_token_bytes(rank)
        except KeyError:  # the gap before o200k's first special token
            break
        lines.append(base64.b64encode(token) + b" %d\n" % rank)
    return b"".join(lines)


def tiktoken_dir(dest: Path | None = None) -> Path:
    """A folder holding a verified `o200k_base.tiktoken` (written once; rewritten if it does not match)."""
    folder = Path(dest) if dest else cache_dir() / "vocab" / "tiktoken"
    target = folder / O200K_FILE
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == O200K_SHA256:
        return folder
    data = o200k_tiktoken_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != O200K_SHA256:
        raise RuntimeError(f"o200k rebuilt from quicktok has sha256 {digest}, not the {O200K_SHA256} that "
                           "openai-harmony pins: the quicktok-v1 package changed")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(target)
    return folder


def ensure_tiktoken_env() -> Path:
    """Point TIKTOKEN_ENCODINGS_BASE at a folder with the verified vocabulary (the one already named there if it
    holds the right file, e.g. the runner image's), before openai-harmony loads its encoding."""
    named = os.environ.get("TIKTOKEN_ENCODINGS_BASE")
    if named:
        f = Path(named) / O200K_FILE
        if f.is_file() and hashlib.sha256(f.read_bytes()).hexdigest() == O200K_SHA256:
            return Path(named)
    folder = tiktoken_dir()
    os.environ["TIKTOKEN_ENCODINGS_BASE"] = str(folder)
    return folder


def hf_tokenizer(name: str, chat_template: str | None = None, **special: str) -> Any:
    """A transformers fast tokenizer with quicktok's `name` vocabulary (o200k_harmony or llama3).

    `special` names the roles of special tokens, e.g. bos_token="<|begin_of_text|>", eos_token="<|eot_id|>".
    """
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks, specials = _ranks(name)

    class _Converter(TikTokenConverter):
        @staticmethod
        def load_tiktoken_bpe(tiktoken_url: str) -> dict[bytes, int]:
            return ranks

    tok = _Converter(vocab_file=name, pattern=PATTERNS[name], extra_special_tokens=[s for _, s in specials])
    backend = tok.converted()
    for i, text in specials:  # added in id order after the ranks: check they landed on the encoding's ids
        if backend.token_to_id(text) != i:
            raise RuntimeError(f"{name}: special token {text} got id {backend.token_to_id(text)}, not {i}")
    out = PreTrainedTokenizerFast(tokenizer_object=backend, **special)
    if chat_template is not None:
        out.chat_template = chat_template
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="write o200k_base.tiktoken (for TIKTOKEN_ENCODINGS_BASE) into a folder")
    ap.add_argument("--out", type=Path, required=True)
    folder = tiktoken_dir(ap.parse_args().out)
    print(f"{folder / O200K_FILE}: sha256 {O200K_SHA256}")


if __name__ == "__main__":
    main()
