"""vLLM server arguments from a model's config entry, shared by the local and Kubernetes backends."""

from __future__ import annotations

from grace.config import NO_NVLINK, ModelConfig, Profile

CPU_BLOCK_SIZE = 32  # tokens per KV-cache block on vLLM's CPU build (the prefix cache's unit): see vllm_args


def server_env(model: ModelConfig, profile: Profile) -> dict[str, str]:
    """The vLLM server's own environment from the config: the profile's `env`, plus the harmony date.

    A harmony model's system message carries a date; vLLM writes today's unless VLLM_SYSTEM_START_DATE is set,
    so the prompt would change from day to day and differ from Exp 2's own rendering (grace.scoring.harmony).
    """
    env = dict(profile.env)
    if model.reasoning is not None and model.reasoning.format == "harmony":
        env["VLLM_SYSTEM_START_DATE"] = model.reasoning.start_date
    return env


def vllm_args(model: ModelConfig, profile: Profile, *, weights: str, port: int, host: str,
              seed: int | None, cpu: bool, download_dir: str | None = None, hardware: str = "") -> list[str]:
    args = [
        "--model", weights,
        "--served-model-name", model.name,
        "--host", host,
        "--port", str(port),
        "--dtype", profile.dtype,
        "--max-model-len", str(profile.max_model_len),
        "--max-logprobs", "20",
        "--enable-prefix-caching",
    ]
    if weights == model.hf_id and model.revision:
        args += ["--revision", model.revision]
    if profile.max_num_seqs:
        args += ["--max-num-seqs", str(profile.max_num_seqs)]
    if profile.quantization:
        args += ["--quantization", profile.quantization]
    if seed is not None:
        args += ["--seed", str(seed)]
    if download_dir:
        args += ["--download-dir", download_dir]
    if cpu:
        # Verified on vLLM's CPU build: eager mode and the in-process executor. KV blocks of 32 tokens, not the
        # CPU default of 128: the prefix cache shares whole blocks only, so at 128 every Exp 2 read (the prompt
        # plus an option prefix, each option order its own prompt) recomputed the last 100-odd tokens of its
        # prompt. At 32, Exp 2 on SmolLM2 ran 2.4x (study 2) and 2.1x (study 1) faster, the log-probabilities the
        # same up to float32 rounding (2.4e-6 nats at most; benchmarks/block_size.py); 16 fails the CPU engine's
        # start. A profile's extra_args come last, so `--block-size N` there wins.
        args += ["--enforce-eager", "--distributed-executor-backend", "uni", "--block-size", str(CPU_BLOCK_SIZE)]
    else:
        args += [
            "--tensor-parallel-size", str(profile.tensor_parallel_size),
            "--gpu-memory-utilization", str(profile.gpu_memory_utilization),
        ]
        if hardware in NO_NVLINK and profile.tensor_parallel_size > 1:
            # RTX 3090s talk over PCIe: vLLM's custom all-reduce (made for NVLink) hangs or gives wrong output.
            args.append("--disable-custom-all-reduce")
    return args + list(profile.extra_args)
