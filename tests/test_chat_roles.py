"""Chat roles and the server checks, against the real vLLM server.

`gemma2-tiny` is a random-weight Gemma-2 under Gemma-2-it's own chat template, which raises "System role not
supported" for any conversation that starts with a system message (as the study's four Gemma-2 entries do).
Without folding, every Exp 1 request was answered HTTP 400 and recorded as `error`; with it, every stage runs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from grace.checkpoint import Checkpoint
from grace.cli import main
from grace.config import Config, load_config
from grace.errors import ServerError
from grace.records import Exp1Record, Exp2Record
from grace.report.build import build_report
from grace.report.checks import MIN_OPTION_MASS, option_mass_by_question
from grace.scoring import run_exp2_sync
from grace.scoring.tokenize import EncodedQuestion, encode_question, load_tokenizer
from grace.serving import Endpoint, ExternalServer
from grace.studies import Question
from grace.studies.registry import STUDIES, get_study
from grace.studies.study1.study import WORDINGS as study1_wordings
from grace.studies.study2.study import WORDINGS as study2_wordings
from tests.conftest import ROOT, vllm_processes
from tests.support.fault_proxy import FaultProxy


def config_with(tmp_path: Path, model: str, **fields: object) -> Path:
    """A copy of the project's config where `model` has the given fields (e.g. system_prompt: native)."""
    d = tmp_path / "config"
    d.mkdir(parents=True)
    models = yaml.safe_load((ROOT / "config" / "models.yaml").read_text())
    models["models"][model].update(fields)
    (d / "models.yaml").write_text(yaml.safe_dump(models, sort_keys=False))
    exp = yaml.safe_load((ROOT / "config" / "experiments.yaml").read_text())
    for s in exp["studies"].values():
        s["input"], s["sample"] = str(ROOT / s["input"]), str(ROOT / s["sample"])
    (d / "experiments.yaml").write_text(yaml.safe_dump(exp, sort_keys=False))
    return d


def test_gemma2_model_runs_every_stage_with_the_instructions_folded(gemma2_server: Endpoint, tmp_path: Path) -> None:
    assert gemma2_server.chat_form == "fold"  # found out from the served template, not configured
    out = tmp_path / "run"
    common = ["--model", "gemma2-tiny", "--sample", "--endpoint", gemma2_server.base_url, "--out", str(out)]
    for study in ("study1", "study2"):
        assert main(["query", "--study", study, "--max-tokens", "16", *common]) == 0
        assert main(["score", "--study", study, *common]) == 0
        stage = out / "gemma2-tiny" / study
        exp1 = Checkpoint(stage / "exp1.jsonl", Exp1Record).load()
        assert len(exp1) == 10 and not [r for r in exp1.values() if r.status == "error"]
        for rec in exp1.values():  # what was sent: one user turn that starts with the study's instructions
            assert [m["role"] for m in rec.messages] == ["user"]
            assert rec.messages[0]["content"].startswith("You are taking part in a psychology study")
            assert rec.prompt_version.endswith("+fold")
        exp2 = Checkpoint(stage / "exp2.jsonl", Exp2Record).load()
        wordings = study1_wordings if study == "study1" else study2_wordings
        assert {r.status for r in exp2.values()} == {"ok"} and len(exp2) == 10 * len(wordings)  # every wording
        for rec in exp2.values():
            assert rec.prompt_version.endswith("+fold")
            system = wordings[rec.prompt_variant].system
            for q in rec.questions.values():  # the prompt is the server's own rendering of the folded turn
                assert f"<start_of_turn>user\n{system}" in q.prompt and q.option_mass is not None
        assert main(["extract", "--study", study, "--input", str(stage / "exp1.jsonl"), "--output",
                     str(stage / "extracted.jsonl"), "--llm-endpoint", gemma2_server.base_url,
                     "--llm-model", "gemma2-tiny"]) == 0
        extracted = [json.loads(line) for line in (stage / "extracted.jsonl").read_text().splitlines()]
        assert len(extracted) == 10
        notes = [n for r in extracted for n in r["fields"]["notes"]]
        assert any(n.startswith("llm: ") for n in notes)  # the extraction model answered ...
        assert not [n for n in notes if "request failed" in n], notes  # ... and never with a 400


def test_preflight_passes_folded_and_fails_fast_without_folding(gemma2_server: Endpoint, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preflight", "--model", "gemma2-tiny", "--endpoint", gemma2_server.base_url,
                 "--out", str(tmp_path / "folded")]) == 0
    report = json.loads((tmp_path / "folded" / "preflight.json").read_text())
    assert report["passed"] and {c["name"] for c in report["checks"]} >= {
        "server", "chat roles", "same prompt", "exp1", "exp2", "option mass", "extraction"}
    capsys.readouterr()
    native = config_with(tmp_path, "gemma2-tiny", system_prompt="native")
    assert main(["preflight", "--config-dir", str(native), "--model", "gemma2-tiny", "--endpoint",
                 gemma2_server.base_url, "--out", str(tmp_path / "native")]) == 1
    report = json.loads((tmp_path / "native" / "preflight.json").read_text())
    assert not report["passed"] and "System role not supported" in report["reason"]
    assert report["reason"].startswith("chat roles") and report["wall_s"] < 30  # stops before any trial runs
    assert not (tmp_path / "native" / "study1" / "exp1.jsonl").exists()
    assert "System role not supported" in capsys.readouterr().out


def test_inprocess_scoring_names_the_template_error_in_one_line(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    native = config_with(tmp_path, "gemma2-tiny", system_prompt="native")
    code = main(["score", "--config-dir", str(native), "--model", "gemma2-tiny", "--study", "study1", "--sample",
                 "--path", "inprocess", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "System role not supported" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_server_that_ignores_logprob_token_ids_stops_at_once(toy_server: Endpoint, cfg: Config) -> None:
    """An older vLLM accepts the unknown field and answers only its top-1: the probe must refuse it."""

    def strip(path: str, body: bytes) -> bytes:
        data = json.loads(body)
        data.pop("logprob_token_ids", None)
        return json.dumps(data).encode()

    with FaultProxy(toy_server.base_url, rewrite=strip) as proxy, pytest.raises(ServerError) as e:
        ExternalServer(proxy.url, cfg.model("toy")).__enter__()
    msg = str(e.value)
    assert "logprob_token_ids" in msg and "vLLM 0.32.0" in msg and "images.vllm" in msg
    with ExternalServer(toy_server.base_url, cfg.model("toy")) as ep:  # the real server passes it
        assert ep.server_version == "0.32.0"


def test_the_configured_form_overrides_detection(gemma2_server: Endpoint, toy_server: Endpoint,
                                                 tmp_path: Path) -> None:
    native = load_config(config_with(tmp_path / "a", "gemma2-tiny", system_prompt="native"))
    with ExternalServer(gemma2_server.base_url, native.model("gemma2-tiny")) as ep:
        assert ep.chat_form == "native"
    folded = load_config(config_with(tmp_path / "b", "toy", system_prompt="fold"))
    with ExternalServer(toy_server.base_url, folded.model("toy")) as ep:
        assert ep.chat_form == "fold"
    with ExternalServer(toy_server.base_url, load_config(ROOT / "config").model("toy")) as ep:
        assert ep.chat_form == "native"  # detected: SmolLM2's template takes a system message


class _BeforeTheAssistantTurn:
    """A deliberately misplaced scoring position: the prompt ends before the assistant's header."""

    def __init__(self, tokenizer: object) -> None:
        self.tokenizer = tokenizer

    async def encode(self, question: Question) -> EncodedQuestion:
        text = self.tokenizer.apply_chat_template(question.messages, add_generation_prompt=False,  # type: ignore
                                                  tokenize=False)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
        right = encode_question(self.tokenizer, question)
        return EncodedQuestion(question.name, text, tuple(ids), right.options, right.option_ids)


@pytest.mark.parametrize("study_name", ["study1", "study2"])
def test_option_mass_is_flagged_when_the_scoring_position_is_wrong(smollm2_server: Endpoint, cfg: Config,
                                                                    tmp_path: Path, study_name: str) -> None:
    study = get_study(study_name)
    # one trial in the main wording and its counterbalanced order: the scoring position, not the layout, is under
    # test (every wording under every rotation took 36 s of SmolLM2 for study 2; tests/test_design_run.py has them)
    trials = study.load(cfg.study_file(study_name, sample=True), limit=1)
    exp = cfg.experiment(study_name, "exp2").model_copy(update={"variants": "main", "rotations_up_to": 0})
    right = run_exp2_sync(smollm2_server, study, trials, exp, tmp_path / "right")
    wrong = run_exp2_sync(smollm2_server, study, trials, exp, tmp_path / "wrong",
                          renderer=_BeforeTheAssistantTurn(load_tokenizer(cfg.model("smollm2"))))
    assert right.ok == wrong.ok == 1
    masses = {}
    for name in ("right", "wrong"):
        recs = list(Checkpoint(tmp_path / name / "exp2.jsonl", Exp2Record).load().values())
        masses[name] = option_mass_by_question(recs)
        for r in recs:  # the distribution sums to 1 either way: only the mass tells them apart
            assert all(abs(sum(q.probs.values()) - 1) < 1e-6 for q in r.questions.values())
    assert all(m >= MIN_OPTION_MASS for m in masses["right"].values()), masses
    assert all(m < MIN_OPTION_MASS / 100 for m in masses["wrong"].values()), masses
    (tmp_path / "run" / "smollm2").mkdir(parents=True)
    shutil.copytree(tmp_path / "wrong", tmp_path / "run" / "smollm2" / study_name)
    report = json.loads((build_report(tmp_path / "run", STUDIES.values()).parent / "report.json").read_text())
    check = next(c for c in report["models"]["smollm2"][study_name]["checks"] if c["name"] == "option mass")
    assert not check["passed"] and check["fatal"] and f"below {MIN_OPTION_MASS:g}" in check["detail"]
    print(f"OPTION-MASS | smollm2 | {study_name} | right {masses['right']} | wrong {masses['wrong']}")


@pytest.mark.server  # the flow serves both models itself
def test_a_model_failing_its_preflight_stops_and_the_next_model_runs(
    prefect_server: str, test_config_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In the flow: gemma2-tiny with folding switched off fails its preflight at once (its own server, started
    and torn down), the run goes on to toy, and the state message, run.json and the report say why."""
    from flows.grace_flow import grace

    cdir = tmp_path / "cfg"
    cdir.mkdir()
    models = yaml.safe_load((test_config_dir / "models.yaml").read_text())
    models["models"]["gemma2-tiny"]["system_prompt"] = "native"
    (cdir / "models.yaml").write_text(yaml.safe_dump(models, sort_keys=False))
    (cdir / "experiments.yaml").write_text((test_config_dir / "experiments.yaml").read_text())
    monkeypatch.setenv("GRACE_CONFIG_DIR", str(cdir))
    before = {p.pid for p in vllm_processes()}
    state = grace(models=["gemma2-tiny", "toy"], studies=["study1"], experiments=["exp1"], limit=3, max_tokens=8,
                  extract_llm=False, out=str(tmp_path / "out"), run_id="preflight-stop", return_state=True)
    assert state.is_failed()
    msg = state.message or ""
    assert "gemma2-tiny: preflight-gemma2-tiny failed" in msg and "System role not supported" in msg, msg
    assert "gemma2-tiny not fit: stopped at preflight" in msg, msg  # the verdict rides along
    run_dir = tmp_path / "out" / "preflight-stop"
    assert len(Checkpoint(run_dir / "toy" / "study1" / "exp1.jsonl", Exp1Record).load()) == 3  # the next model ran
    assert not (run_dir / "gemma2-tiny" / "study1").exists()  # no study rows for the stopped model
    report = (run_dir / "report" / "report.md").read_text()
    assert "stopped at preflight" in report and "System role not supported" in report
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert not [p for p in vllm_processes() if p.pid not in before], "both servers torn down"
