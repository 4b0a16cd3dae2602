"""The server's limit for Exp 1: vLLM's own offline batch generation (`vllm.LLM.chat`) on the same prompts.

Runs in the vLLM server venv (no grace imports): `.grace/vllm-venv/bin/python benchmarks/vllm_offline.py
SPEC.json OUT.json`. SPEC holds the engine settings (as the server gets them) and the conversations and
sampling parameters; OUT gets the timed generation's wall time and token counts (model load excluded).
"""

from __future__ import annotations

import json
import sys
import time


def main(spec_path: str, out_path: str) -> None:
    from vllm import LLM, SamplingParams

    spec = json.loads(open(spec_path).read())
    t0 = time.perf_counter()
    llm = LLM(**spec["engine"])
    load_s = time.perf_counter() - t0
    sp = SamplingParams(**spec["sampling"])
    convs = spec["conversations"]
    llm.chat(convs, SamplingParams(max_tokens=1), use_tqdm=False)  # warm-up: the prefix cache, as for the server
    t1 = time.perf_counter()
    outs = llm.chat(convs, sp, use_tqdm=False)
    wall = time.perf_counter() - t1
    result = {
        "load_s": load_s, "wall_s": wall, "n": len(outs),
        "output_tokens": sum(len(o.outputs[0].token_ids) for o in outs),
        "prompt_tokens": sum(len(o.prompt_token_ids or []) for o in outs),
    }
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
