"""vLLM server arguments from a model's config entry, shared by the local and Kubernetes backends."""

from __future__ import annotations

from grace.config import ModelConfig, Profile


def vllm_args(model: ModelConfig, profile: Profile, *, weights: str, port: int, host: str,
              seed: int | None, cpu: bool, download_dir: str | None = None) -> list[str]:
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
        # Verified on vLLM's CPU build: eager mode and the in-process executor.
        args += ["--enforce-eager", "--distributed-executor-backend", "uni"]
    else:
        args += [
            "--tensor-parallel-size", str(profile.tensor_parallel_size),
            "--gpu-memory-utilization", str(profile.gpu_memory_utilization),
        ]
    return args + list(profile.extra_args)
