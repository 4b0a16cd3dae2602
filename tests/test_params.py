"""The run parameters: one validated model whose fields the flow's signature and the deployment's form show."""

from __future__ import annotations

import inspect

import pytest
from prefect.utilities.callables import parameter_schema, parameter_schema_from_entrypoint
from pydantic import ValidationError

from flows.grace_flow import grace
from grace.config import load_config
from grace.params import FIELDS, RunParams
from tests.conftest import ROOT


def test_defaults_are_the_embedded_default() -> None:
    p = RunParams()
    assert (p.models, p.studies, p.experiments, p.sample, p.profile) == (
        None, None, ["exp1", "exp2"], True, "local")
    cfg = load_config(ROOT / "config")  # no studies named: every study of the config, in its order
    assert p.study_names(cfg) == ["study1", "study2"] == list(cfg.experiments_file.studies)
    assert [s.name for s in p.study_objects(cfg)] == ["study1", "study2"]
    assert RunParams(studies=["study2"]).study_names(cfg) == ["study2"]
    assert (p.preflight, p.fail_on_unfit, p.study_id, p.task_retries) == (True, False, None, 2)


@pytest.mark.parametrize("bad", [
    {"studies": ["study3"]}, {"studies": []}, {"experiments": ["exp3"]}, {"profile": "h100"}, {"limit": 0},
    {"max_tokens": 100000}, {"concurrency": 0}, {"endpoint": "localhost:8000"}, {"task_retries": -1},
    {"study_id": "../elsewhere"}, {"sampel": True},
])
def test_nonsense_is_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        RunParams(**bad)


def test_the_flow_signature_is_the_model_field_for_field() -> None:
    sig = inspect.signature(grace.fn).parameters
    assert list(sig) == list(FIELDS)
    for name, param in sig.items():
        assert param.default is FIELDS[name], name  # same default, same description


@pytest.mark.parametrize("source", ["function", "entrypoint"])
def test_the_deployment_form_shows_help_and_constraints(source: str) -> None:
    """Both ways Prefect builds the schema (from the flow object, or from the entrypoint's source at deploy)."""
    schema = (parameter_schema(grace) if source == "function" else
              parameter_schema_from_entrypoint(f"{ROOT}/flows/grace_flow.py:grace")).model_dump_for_openapi()
    props = schema["properties"]
    assert set(props) == set(FIELDS)
    for name, prop in props.items():
        assert prop.get("description") == FIELDS[name].description, name
    assert "10-row sample" in props["sample"]["description"]
    assert "default models" in props["models"]["description"]
    assert props["task_retries"]["minimum"] == 0 and props["task_retries"]["maximum"] == 10
    assert props["profile"]["enum"] == ["local", "rtx3090", "a100"]
    assert props["studies"]["minItems"] == 1 and "anyOf" not in props["studies"]  # empty: not sent, no "None"
