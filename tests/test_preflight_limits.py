"""Preflight fails what will fail: on the real vLLM server, the random-weight toy model's replies are cut by
max_tokens and unreadable; without `checks.preflight_accepts` its preflight stops it with that reason, with it
the same replies pass as warnings (what the toy's config says, so the test runs can use it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from grace.cli import main
from grace.serving import Endpoint
from tests.conftest import ROOT

pytestmark = pytest.mark.server


def _config(tmp_path: Path, accepts: list[str]) -> Path:
    d = tmp_path / f"config-{'-'.join(accepts) or 'none'}"
    d.mkdir()
    models = yaml.safe_load((ROOT / "config" / "models.yaml").read_text())
    models["models"]["toy"]["checks"] = {"min_option_mass": 0, "preflight_accepts": accepts}
    (d / "models.yaml").write_text(yaml.safe_dump(models, sort_keys=False))
    exp = yaml.safe_load((ROOT / "config" / "experiments.yaml").read_text())
    for s in exp["studies"].values():
        s["input"], s["sample"] = str(ROOT / s["input"]), str(ROOT / s["sample"])
    for e in exp["experiments"]:
        if e["experiment"] == "exp1":
            e["sampling"]["max_tokens"] = 24  # random tokens never stop on their own: every reply is cut
    exp["extraction"]["llm_fallback"] = False  # the rules alone: the toy's noise is unreadable either way
    (d / "experiments.yaml").write_text(yaml.safe_dump(exp, sort_keys=False))
    return d


def _preflight(cfg: Path, endpoint: Endpoint, out: Path) -> tuple[int, dict]:
    code = main(["preflight", "--config-dir", str(cfg), "--model", "toy", "--endpoint", endpoint.base_url,
                 "--experiments", "exp1", "--out", str(out)])
    return code, json.loads((out / "preflight.json").read_text())


def test_a_model_whose_replies_will_be_cut_and_unread_stops_at_its_preflight(toy_server: Endpoint,
                                                                            tmp_path: Path) -> None:
    code, report = _preflight(_config(tmp_path, []), toy_server, tmp_path / "strict")
    checks = {c["name"]: c for c in report["checks"]}
    assert code == 1 and not report["passed"]
    assert report["reason"].startswith("exp1 length: study1: 2 of 2 replies cut by max_tokens: the study will "
                                       "exceed the 20% limit"), report["reason"]
    assert not checks["extraction"]["passed"] and checks["extraction"]["fatal"]
    assert "0 of 2 replies fully read (rules only): the study will fall below the 80% limit" in \
        checks["extraction"]["detail"]

    code, report = _preflight(_config(tmp_path, ["truncated", "unreadable"]), toy_server, tmp_path / "accepted")
    checks = {c["name"]: c for c in report["checks"]}
    assert code == 0 and report["passed"]
    for name in ("exp1 length", "extraction"):  # the same findings, as warnings
        assert not checks[name]["passed"] and not checks[name]["fatal"], checks[name]
        assert "accepted: checks.preflight_accepts" in checks[name]["detail"]
