"""The parameters of one study run, as one validated model: what the flow, its per-model subflow and its tasks
carry, and what the Prefect UI's run form shows (each field's description, default and constraints).

Each field's constraints live in its type (`Annotated[...]`) and its help text in its default (`Field(...)`):
Prefect builds the deployment's parameter schema from the flow's signature that way (it keeps a type's
constraints and a default's description), and the flow's signature repeats these fields one by one
(`flows/grace_flow.py`; a test keeps the two equal). One flat parameter per field, rather than one parameter
holding the whole model, because Prefect merges a run's parameters over the deployment's key by key: with one
nested parameter, `-p params='{"sample": false}'` would silently drop every other setting of the deployment
(the cluster profile, the results root) back to the code's defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator
from pydantic.json_schema import SkipJsonSchema

from grace.config import Config, ExperimentName, ProfileName, load_config
from grace.errors import ConfigError
from grace.studies import Study
from grace.studies.registry import STUDIES, get_studies


def model_names() -> list[str]:
    """The models of config/models.yaml, for the form's choices (read when the flow is deployed); none when it
    cannot be read (then any name passes the form, and the flow's own check names an unknown one)."""
    try:
        return list(load_config().models)
    except (ConfigError, OSError):
        return []


def _choice(values: list[str]) -> Any:
    """A name the form offers as a choice among `values` (a plain text field when there are none)."""
    return WithJsonSchema({"type": "string", "enum": values} if values else {"type": "string"})


# The types, constraints included (the flow's signature uses the same ones). An optional field's "empty" is
# None in Python but left out of the form's schema (SkipJsonSchema), so the run form shows a plain field and
# not a choice between a type and "None"; an empty field is not sent, and the field's default applies.
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,80}$")]
ModelName = Annotated[str, _choice(model_names())]
StudyName = Annotated[str, _choice(list(STUDIES))]
ModelsT = Annotated[list[ModelName], Field(json_schema_extra={"uniqueItems": True})] | SkipJsonSchema[None]
StudiesT = Annotated[list[StudyName], Field(min_length=1)] | SkipJsonSchema[None]
ExperimentsT = Annotated[list[ExperimentName], Field(min_length=1)]
ProfileT = ProfileName
NameT = Name | SkipJsonSchema[None]
CountT = Annotated[int, Field(ge=1)] | SkipJsonSchema[None]
MaxTokensT = Annotated[int, Field(ge=1, le=8192)] | SkipJsonSchema[None]
ConcurrencyT = Annotated[int, Field(ge=1, le=4096)] | SkipJsonSchema[None]
EndpointT = Annotated[str, Field(pattern=r"^https?://")] | SkipJsonSchema[None]
RetriesT = Annotated[int, Field(ge=0, le=10)]
SwitchT = bool | SkipJsonSchema[None]


class RunParams(BaseModel):
    """What a study run does: which models, studies and experiments, on which hardware, written where."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: ModelsT = Field(None, description=(
        "Models from config/models.yaml, run one at a time in this order. Empty: the profile's default models "
        "(smollm2 on the local profile; every enabled model that has the profile on rtx3090 and a100)."))
    studies: StudiesT = Field(None, description=(
        "Studies to run, e.g. study1 (knowledge attribution, 300 trials) and study2 (politeness, 2,424 trials). "
        "Empty: every study of config/experiments.yaml."))
    experiments: ExperimentsT = Field(["exp1", "exp2"], description=(
        "exp1: free-text answers through the chat API (then extraction); exp2: answer-option probabilities from "
        "log-probabilities."))
    sample: bool = Field(True, description=(
        "Run each study's 10-row sample (data/*_sample.csv) instead of the full trial set: a quick check."))
    profile: ProfileT = Field("local", description=(
        "Where the model servers run: local (a vLLM process on this machine), rtx3090 or a100 (the cluster)."))
    out: str = Field("results", description="The results root; each run writes a folder inside it.")
    study_id: NameT = Field(None, description=(
        "A named study (e.g. 2026-12-main) maps to one run folder that every run with this name continues: "
        "finished models and rows are skipped. Empty: a new folder for this run."))
    run_id: NameT = Field(None, description="The run folder's name (default: the flow run's name and id).")
    limit: CountT = Field(None, description="Only the first N trials of each study (empty: all).")
    max_tokens: MaxTokensT = Field(None, description=(
        "Override Exp 1's max_tokens from config/experiments.yaml (empty: the configured 256 / 128)."))
    concurrency: ConcurrencyT = Field(None, description=(
        "Requests (Exp 1) or trials (Exp 2) in flight (empty: experiments.yaml, else the server's batch size)."))
    endpoint: EndpointT = Field(None, description=(
        "Use an already running OpenAI-compatible server at this URL instead of starting one per model."))
    task_retries: RetriesT = Field(2, description=(
        "Retries of a failed stage; a retry resumes from the stage's checkpoint (finished rows are kept)."))
    overwrite: bool = Field(False, description="Allow writing into a run folder that holds a completed run.")
    extract_llm: SwitchT = Field(None, description=(
        "Ask an LLM for what the extraction rules could not read (empty: config's extraction.llm_fallback; "
        "false: rules only, for quick runs)."))
    preflight: bool = Field(True, description=(
        "Before each model's full study, a few trials through every stage and the checks that stop a broken "
        "model in minutes (chat roles, reasoning budget, option mass, log-probabilities)."))
    fail_on_unfit: bool = Field(False, description=(
        "End the run Failed when the data-quality report finds a model/study not fit (scheduled runs go red)."))

    @field_validator("studies")
    @classmethod
    def _known_studies(cls, v: list[str] | None) -> list[str] | None:
        unknown = [s for s in v or [] if s not in STUDIES]
        if unknown:
            raise ValueError(f"unknown study {unknown[0]!r} (known: {', '.join(STUDIES)})")
        return v

    def study_names(self, cfg: Config) -> list[str]:
        """The studies chosen, or (none chosen) every study of the config, in its order."""
        return list(self.studies) if self.studies else list(cfg.experiments_file.studies)

    def study_objects(self, cfg: Config) -> list[Study]:
        """The chosen studies as the stages take them (looked up by name here, at the flow's edge)."""
        return get_studies(self.study_names(cfg))



# Each field's default, description included: the flow's signature takes its defaults from here. Typed Any on
# purpose: a `FieldInfo` used as a default stands for the field's value (pydantic, through which Prefect validates
# and documents a flow's parameters, reads it so), so `sample: bool = FIELDS["sample"]` is right, but a type
# checker would see a FieldInfo where a bool is declared. This one annotation replaces an ignore per parameter.
FIELDS: Mapping[str, Any] = RunParams.model_fields

