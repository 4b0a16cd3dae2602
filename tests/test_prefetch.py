"""The prefetch step against the real `huggingface_hub` client and a faithful fake of the Hub's HTTP API.

The Hub cannot be reached here, so tests/fake_hub serves a tiny repo (the toy model's real files) the way the
Hub does: revision info, the file tree, file metadata and bytes, its error codes. The client is the one Grace
runs on the cluster, unchanged (only its endpoint points here). The last test serves the fetched commit with
the real vLLM server, offline, from that cache.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from grace.cli import main
from grace.config import Config, ModelConfig
from grace.prefetching import prefetch_model, read_record, revision_to_fetch, served_model
from grace.run import RunFolder
from grace.serving.prefetch import (
    TERMINATION_LOG_LIMIT,
    PrefetchError,
    PrefetchMarker,
    fetch_local,
    marker_path,
    mismatch,
    parse_termination_message,
    prefetch,
    repo_folder,
    served,
    snapshot_dir,
    termination_message,
)
from tests.fake_hub import FakeHub

ROOT = Path(__file__).resolve().parent.parent
REPO = "grace/toy-random-llama"


def toy_files(cfg: Config) -> dict[str, bytes]:
    """The toy model's real files, plus the kind of extra checkpoint real repos carry and vLLM never loads."""
    folder = ROOT / str(cfg.model("toy").local_path)
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    return files | {"original/consolidated.00.pth": b"\0" * 4096, "README.md": b"# toy\n"}


@pytest.fixture()
def hub(cfg: Config) -> Iterator[FakeHub]:
    with FakeHub(tokens=("hf_reader",)) as h:
        h.push(REPO, toy_files(cfg))
        yield h


@pytest.fixture()
def hub_env(hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """HF_ENDPOINT at the fake Hub and an empty cache; returns the cache."""
    cache = tmp_path / "hf" / "hub"
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return cache


def hub_model(cfg: Config, revision: str = "main", hf_id: str = REPO) -> ModelConfig:
    """The toy model as a hub model: no local folder, so it is served from the Hugging Face cache."""
    toy = cfg.model("toy")
    return ModelConfig.model_validate(toy.model_dump() | {"name": "toy-hub", "hf_id": hf_id, "revision": revision,
                                                          "local_path": None})


def test_branch_resolved_once_files_fetched_and_marked(cfg: Config, hub: FakeHub, hub_env: Path) -> None:
    sha = hub.repos[REPO].branches["main"]
    m = prefetch(hub_model(cfg))
    assert (m.commit, m.requested, m.source) == (sha, "main", "hub")
    served_files = {f: n for f, n in toy_files(cfg).items() if not f.startswith("original/") and f != "README.md"}
    assert m.files == {f: len(b) for f, b in served_files.items()}, "the serving files, not original/ or README"
    assert m.downloaded_bytes == m.total_bytes == sum(len(b) for b in served_files.values())
    snap = snapshot_dir(hub_env, REPO, sha)
    assert {p.name for p in snap.iterdir()} == set(served_files)
    assert (hub_env / repo_folder(REPO) / "refs" / "main").read_text() == sha
    assert PrefetchMarker.model_validate_json(marker_path(hub_env, REPO, sha).read_text()).files == m.files
    assert hub.count("GET", "/resolve/") == len(served_files)
    assert hub.count("GET", "original") == 0


def test_a_second_prefetch_fetches_nothing(cfg: Config, hub: FakeHub, hub_env: Path) -> None:
    first = prefetch(hub_model(cfg))
    n = len(hub.requests)
    again = prefetch(hub_model(cfg))
    assert hub.requests[n:] == [("GET", f"/api/models/{REPO}/revision/main?blobs=true")], "one lookup, no file"
    assert (again.commit, again.downloaded_bytes) == (first.commit, 0)
    n = len(hub.requests)
    pinned = prefetch(hub_model(cfg, revision=first.commit))
    assert hub.requests[n:] == [], "a commit already marked: nothing asked at all"
    assert pinned.commit == first.commit


def test_a_run_keeps_the_commit_it_resolved_when_the_branch_moves(cfg: Config, hub: FakeHub, hub_env: Path,
                                                                  tmp_path: Path) -> None:
    model = hub_model(cfg)
    run = RunFolder(tmp_path / "run")
    first = prefetch_model(run, model, "local", run_id="r", attempt=1)
    assert first.ok and first.marker is not None
    moved = hub.push(REPO, toy_files(cfg) | {"config.json": toy_files(cfg)["config.json"] + b"\n"})
    assert moved != first.marker.commit
    assert revision_to_fetch(run, model) == first.marker.commit
    again = prefetch_model(run, model, "local", run_id="r", attempt=2)  # a retry of the same run
    assert again.ok and again.marker is not None and again.marker.commit == first.marker.commit
    assert served_model(run, model).revision == first.marker.commit
    fresh = prefetch_model(RunFolder(tmp_path / "other"), model, "local", run_id="r2", attempt=1)
    assert fresh.marker is not None and fresh.marker.commit == moved, "a new run resolves the branch again"
    assert json.loads((run.root / "toy-hub" / "prefetch.json").read_text())["attempt"] == 2


@pytest.mark.parametrize("hf_id, revision, token, expected", [
    ("grace/gated", "main", None, r"grace/gated is gated: accept its licence"),
    (REPO, "v9", None, r"revision 'v9' not found in grace/toy-random-llama"),
    ("grace/nothing-here", "main", None, r"hub repo grace/nothing-here not found \(or private"),
    ("grace/no-weights", "main", None, r"has no safetensors weights to serve"),
])
def test_what_the_hub_refuses_is_a_clear_reason(cfg: Config, hub: FakeHub, hub_env: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch, hf_id: str, revision: str,
                                                token: str | None, expected: str) -> None:
    hub.push("grace/gated", toy_files(cfg), gated=True)
    hub.push("grace/no-weights", {"config.json": b"{}", "README.md": b"x"})
    run = RunFolder(tmp_path / "run")
    record = prefetch_model(run, hub_model(cfg, revision, hf_id), "local", run_id="r", attempt=1)
    assert record.status == "failed" and record.reason is not None
    assert re.search(expected, record.reason), record.reason
    assert read_record(run, "toy-hub") == record
    assert not list(hub_env.glob("*/snapshots/*/*.safetensors")), "nothing fetched"
    monkeypatch.setenv("HF_TOKEN", "hf_reader")
    if hf_id == "grace/gated":  # the token whose account accepted the licence reads it
        assert prefetch(hub_model(cfg, revision, hf_id)).source == "hub"


def test_local_models_are_checked_not_downloaded(cfg: Config, tmp_path: Path) -> None:
    m = fetch_local(cfg.model("toy"))
    assert (m.source, m.commit, m.downloaded_bytes) == ("local", "random-seed-0", 0)
    assert "model.safetensors" in m.files and m.total_bytes > 20_000_000
    assert served(cfg.model("toy"), m) == cfg.model("toy")
    missing = cfg.model("toy").model_copy(update={"local_path": str(tmp_path / "gone")})
    with pytest.raises(PrefetchError, match=r"weights .*gone not found .*run scripts/setup.sh"):
        prefetch(missing)


def test_marker_checks_and_the_termination_message(cfg: Config) -> None:
    model = hub_model(cfg)
    m = PrefetchMarker(model="toy-hub", hf_id=REPO, requested="main", commit="a" * 40, source="hub",
                       files={"config.json": 2, "model.safetensors": 9}, file_count=2, total_bytes=11)
    assert mismatch(m, model, "main") is None and mismatch(m, model, "a" * 40) is None
    assert "not bbbb" in (mismatch(m, model, "b" * 40) or "")
    assert "is for grace/toy-random-llama, not other/x" in (
        mismatch(m, model.model_copy(update={"hf_id": "other/x"})) or "")
    assert "no config.json or safetensors" in (mismatch(m.model_copy(update={"files": {"a.txt": 1}}), model) or "")
    assert served(model, m).revision == "a" * 40
    assert parse_termination_message(termination_message(m)) == m
    many = m.model_copy(update={"files": {f"model-{i:05d}-of-99999.safetensors": 5_000_000_000 for i in range(200)}})
    text = termination_message(many)
    assert len(text.encode()) <= TERMINATION_LOG_LIMIT
    assert parse_termination_message(text).commit == m.commit and parse_termination_message(text).file_count == 2
    with pytest.raises(PrefetchError, match="not a marker"):
        parse_termination_message("Traceback (most recent call last): ...")


def test_the_prefetch_command_writes_its_result_for_the_job(cfg: Config, hub: FakeHub, hub_env: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """`grace prefetch` as the prefetch Job runs it: the marker (or the reason) in the termination log."""
    cdir = tmp_path / "config"
    cdir.mkdir()
    shutil.copy(ROOT / "config" / "experiments.yaml", cdir / "experiments.yaml")
    models = yaml.safe_load((ROOT / "config" / "models.yaml").read_text())
    models["models"]["toy-hub"] = hub_model(cfg).model_dump(mode="json", exclude={"name"}, exclude_defaults=True)
    models["models"]["toy-hub"]["profiles"] = {"local": {"gpu_count": 0}}
    (cdir / "models.yaml").write_text(yaml.safe_dump(models))
    log = tmp_path / "termination-log"
    args = ["prefetch", "--config-dir", str(cdir), "--model", "toy-hub", "--cache-dir", str(tmp_path / "c" / "hub"),
            "--termination-log", str(log)]
    assert main(args) == 0
    marker = parse_termination_message(log.read_text())
    assert marker.commit == hub.repos[REPO].branches["main"] and marker.files
    assert "is commit" in capsys.readouterr().out
    assert main([*args, "--revision", "no-such-branch"]) == 1
    assert log.read_text() == "toy-hub: revision 'no-such-branch' not found in grace/toy-random-llama"


@pytest.mark.server
def test_vllm_serves_the_prefetched_commit_offline(cfg: Config, hub: FakeHub, hub_env: Path, tmp_path: Path) -> None:
    """The real vLLM server loads the hub model at the fetched commit from that cache, with HF_HUB_OFFLINE (as
    the GPU pod does): `--revision <sha>` and `--download-dir` are all it needs; the records carry the commit."""
    from grace.query import run_exp1
    from grace.serving import LocalVLLMServer
    from grace.studies.registry import get_study

    marker = prefetch(hub_model(cfg))
    model = served(hub_model(cfg), marker)
    server = LocalVLLMServer(model, run_id="pytest-prefetched", start_timeout_s=300)
    args = server.command
    assert args[args.index("--model") + 1] == REPO and args[args.index("--revision") + 1] == marker.commit
    assert args[args.index("--download-dir") + 1] == str(hub_env)
    n = len(hub.requests)
    with server as ep:
        study = get_study("study2")
        trials = study.load(cfg.study_file("study2", sample=True), limit=2)
        exp = cfg.experiment("study2", "exp1")
        exp = exp.model_copy(update={"sampling": exp.sampling.model_copy(update={"max_tokens": 4})})
        asyncio.run(run_exp1(ep, study, trials, exp, tmp_path))
    assert hub.requests[n:] == [], "the server asked the Hub nothing: everything came from the cache"
    rows = [json.loads(x) for x in (tmp_path / "exp1.jsonl").read_text().splitlines()]
    assert {r["model_revision"] for r in rows} == {marker.commit} and len(rows) == 2
