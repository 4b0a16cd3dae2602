"""How many requests Grace keeps in flight: explicit settings first, else as many as the server batches."""

from __future__ import annotations

from grace.config import VLLM_CPU_SERVER_SEQS, VLLM_GPU_SERVER_SEQS, Config, Profile
from grace.pipeline import backend_factory
from grace.serving import FALLBACK_CONCURRENCY, Endpoint, in_flight
from grace.serving.args import vllm_args


def test_override_then_experiment_then_server_slots_then_fallback() -> None:
    ep = Endpoint("http://x", "m", batch_slots=128)
    assert in_flight(ep, configured=16, override=4) == 4
    assert in_flight(ep, configured=16) == 16
    assert in_flight(ep, configured=None) == 128
    assert in_flight(Endpoint("http://x", "m"), configured=None) == FALLBACK_CONCURRENCY


def test_batch_slots_follow_the_server_batch_size() -> None:
    assert Profile(gpu_count=0).batch_slots == VLLM_CPU_SERVER_SEQS == 128
    assert Profile(gpu_count=1).batch_slots == VLLM_GPU_SERVER_SEQS == 256
    assert Profile(gpu_count=1, max_num_seqs=64).batch_slots == 64


def test_max_num_seqs_reaches_the_server_and_the_endpoint(cfg: Config) -> None:
    toy = cfg.model("toy")
    local = toy.profile("local")
    assert "--max-num-seqs" not in vllm_args(toy, local, weights="w", port=1, host="h", seed=None, cpu=True)
    pinned = local.model_copy(update={"max_num_seqs": 48})
    args = vllm_args(toy, pinned, weights="w", port=1, host="h", seed=None, cpu=True)
    assert args[args.index("--max-num-seqs") + 1] == "48"
    # the default Exp 1 experiments leave concurrency to the server
    assert {cfg.experiment(s, "exp1").concurrency for s in ("study1", "study2")} == {None}
    # an external URL for a model with that profile gets the profile's slots; without it, none
    ext = backend_factory(toy, "local", run_id="r", endpoint="http://127.0.0.1:9")()
    assert ext.endpoint.batch_slots == 128
    assert backend_factory(toy, "a100", run_id="r", endpoint="http://127.0.0.1:9")().endpoint.batch_slots is None
