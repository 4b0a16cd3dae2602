"""Bad input is refused before anything starts, with one line naming the file and the row or field.

The corpus lives in tests/bad_inputs/ and its manifest says, per file, what it is checked as and which
fragments the error must contain (or that the file must be accepted: BOM, Windows line endings).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from grace.cli import main
from grace.config import load_config
from grace.errors import ConfigError, DataError
from grace.pipeline import make_plan
from grace.studies.registry import get_study
from tests.conftest import ROOT, vllm_processes

pytestmark = pytest.mark.faults

CORPUS = Path(__file__).parent / "bad_inputs"
MANIFEST: dict[str, dict[str, Any]] = yaml.safe_load((CORPUS / "manifest.yaml").read_text())
CSV_CASES = sorted(k for k in MANIFEST if k.endswith(".csv"))
CONFIG_CASES = sorted(k for k in MANIFEST if k.endswith(".yaml"))


def config_with(tmp_path: Path, name: str) -> Path:
    """A copy of config/ with one file replaced by the corpus file `name`."""
    d = tmp_path / "cfg"
    shutil.copytree(ROOT / "config", d)
    shutil.copy(CORPUS / name, d / MANIFEST[name]["role"])
    return d


def assert_one_line_with(message: str, fragments: list[str]) -> None:
    assert "\n" not in message and "Traceback" not in message, message
    for frag in fragments:
        assert frag in message, f"{frag!r} not in {message!r}"


def test_corpus_is_complete() -> None:
    files = {p.name for p in CORPUS.iterdir() if p.name != "manifest.yaml"}
    assert files == set(MANIFEST), f"manifest and corpus differ: {files ^ set(MANIFEST)}"
    rejected = [k for k, v in MANIFEST.items() if not v.get("accept")]
    assert len(rejected) >= 30, f"only {len(rejected)} malformed inputs"
    vague = [k for k in rejected if len(MANIFEST[k].get("expect") or []) < 1]
    assert not vague, f"no expected error fragments for {vague}"


@pytest.mark.parametrize("name", CSV_CASES)
def test_csv(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    case = MANIFEST[name]
    study = get_study(case["study"])
    path = CORPUS / name
    if case.get("accept"):
        trials = study.load(path)
        assert len(trials) == case["rows"] and trials[0]["trial_id"] == case["first_trial"]
        for t in trials:
            assert all("\ufeff" not in k and "\r" not in v for k, v in t.items()), t
        assert main(["check-data", "--study", case["study"], str(path)]) == 0
        return
    with pytest.raises(DataError) as err:
        study.load(path)
    assert_one_line_with(str(err.value), [str(path), *case["expect"]])
    assert main(["check-data", "--study", case["study"], str(path)]) == 2
    stderr = capsys.readouterr().err
    assert_one_line_with(stderr.strip(), case["expect"])


@pytest.mark.parametrize("name", CONFIG_CASES)
def test_config(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = config_with(tmp_path, name)
    with pytest.raises(ConfigError) as err:
        load_config(d)
    assert_one_line_with(str(err.value), [str(d / MANIFEST[name]["role"]), *MANIFEST[name]["expect"]])
    assert main(["check-config", "--config-dir", str(d)]) == 2
    assert_one_line_with(capsys.readouterr().err.strip(), MANIFEST[name]["expect"])


@pytest.mark.parametrize("name", [k for k in CSV_CASES if not MANIFEST[k].get("accept")])
def test_plan_refuses_bad_csv_before_serving(name: str, tmp_path: Path) -> None:
    """make_plan (used by the flow and `grace preflight`) loads every input row before any server starts, and refuses
    with the same one-line error as `check-data`: the file and the case's own fragments (row, column, value)."""
    d = tmp_path / "cfg"
    shutil.copytree(ROOT / "config", d)
    study = MANIFEST[name]["study"]
    exp = yaml.safe_load((d / "experiments.yaml").read_text())
    exp["studies"][study]["sample"] = str(CORPUS / name)
    (d / "experiments.yaml").write_text(yaml.safe_dump(exp))
    with pytest.raises(DataError) as err:
        make_plan(load_config(d), models=["toy"], studies=[get_study(study)], experiments=["exp1"], sample=True,
                  profile="local")
    assert_one_line_with(str(err.value), [str(CORPUS / name), *MANIFEST[name]["expect"]])


def test_query_refuses_bad_input_without_starting_a_server(capsys: pytest.CaptureFixture[str]) -> None:
    before = {p.pid for p in vllm_processes()}
    bad = CORPUS / "s1_duplicate_key.csv"
    assert main(["query", "--model", "toy", "--study", "study1", "--input", str(bad), "--out", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert_one_line_with(err.strip(), [str(bad), "row 4", "duplicated trial key"])
    assert {p.pid for p in vllm_processes()} == before, "no server may start for bad input"
