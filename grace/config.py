"""Validated configuration: models (`config/models.yaml`) and experiments (`config/experiments.yaml`).

Every mistake becomes one line naming the file and the field, before anything starts.
"""

from __future__ import annotations

import re
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, TypeGuard, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from grace.errors import ConfigError
from grace.paths import config_dir, resolve

Dtype = Literal["auto", "float32", "bfloat16", "float16"]
Quantization = Literal["awq", "awq_marlin", "gptq", "fp8", "mxfp4", "bitsandbytes"]
ProfileName = Literal["local", "rtx3090", "a100"]
PROFILES: tuple[ProfileName, ...] = get_args(ProfileName)
ExperimentName = Literal["exp1", "exp2"]
EXPERIMENTS: tuple[ExperimentName, ...] = get_args(ExperimentName)
# How Exp 2 reads the options' log-probabilities: "server", one next-token read per node of the options' token
# trie; "inprocess", transformers forward passes in this process (no server); "per-option", one prompt_logprobs
# request per option (lm-eval style). Exp 1 is always served ("server").
ScoringPath = Literal["server", "inprocess", "per-option"]
SCORING_PATHS: tuple[ScoringPath, ...] = get_args(ScoringPath)
SERVER_PATHS: tuple[ScoringPath, ...] = ("server", "per-option")


def is_profile(name: str) -> TypeGuard[ProfileName]:
    """A known profile name: a string from the command line or a caller, narrowed to ProfileName."""
    return name in PROFILES


LIMIT_HEADROOM = 1.2  # cluster policy: limits at most 20% above requests


class Strict(BaseModel):
    """A config section: unknown keys are refused (a typo is an error), values are read-only."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(Strict):
    """Kubernetes requests and limits (CPU in cores, memory in GiB)."""

    cpu_request: Annotated[float, Field(gt=0)] = 4
    cpu_limit: Annotated[float, Field(gt=0)] = 4.8
    memory_gib_request: Annotated[float, Field(gt=0)] = 32
    memory_gib_limit: Annotated[float, Field(gt=0)] = 38

    @model_validator(mode="after")
    def _limits_within_policy(self) -> Resources:
        """Cluster policy: a limit is at least its request and at most 20% above it."""
        for kind, req, lim in (("cpu", self.cpu_request, self.cpu_limit),
                               ("memory_gib", self.memory_gib_request, self.memory_gib_limit)):
            if lim < req:
                raise ValueError(f"{kind}_limit {lim} is below {kind}_request {req}")
            if lim > req * LIMIT_HEADROOM + 1e-9:
                raise ValueError(
                    f"{kind}_limit {lim} is more than 20% above {kind}_request {req} "
                    f"(cluster policy: at most {round(req * LIMIT_HEADROOM, 3)})"
                )
        return self


ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SECRET_LIKE = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_KEY", re.I)
COMMIT = re.compile(r"^[0-9a-f]{40}$")
NO_NVLINK = ("rtx3090",)  # GPUs whose tensor parallelism goes over PCIe: no custom all-reduce, no NCCL P2P


VLLM_CPU_SERVER_SEQS = 128  # vLLM's max_num_seqs default for its OpenAI server, CPU build (engine/arg_utils.py)
VLLM_GPU_SERVER_SEQS = 256  # ... on GPUs below 70 GB (A100, RTX 3090)


class Profile(Strict):
    """How one model is served on one kind of hardware."""

    dtype: Dtype = "auto"
    quantization: Quantization | None = None
    gpu_count: Annotated[int, Field(ge=0, le=8)] = 1
    tensor_parallel_size: Annotated[int, Field(ge=1, le=8)] = 1
    max_model_len: Annotated[int, Field(ge=256)] = 4096
    gpu_memory_utilization: Annotated[float, Field(gt=0.1, le=0.98)] = 0.9
    resources: Resources = Resources()
    extra_args: list[str] = []
    exception: bool = False  # the cluster's written exception for more than 2 GPUs
    throughput_tokens_per_s: Annotated[float, Field(gt=0)] | None = None  # for `grace plan`
    max_num_seqs: Annotated[int, Field(ge=1, le=4096)] | None = None  # vLLM's batch size; None: vLLM's default
    env: dict[str, str] = {}  # the vLLM server's environment (local process and cluster Deployment alike)

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        for name in v:
            if not ENV_NAME.match(name):
                raise ValueError(f"env: {name!r} is not an environment variable name")
            if SECRET_LIKE.search(name):
                raise ValueError(f"env: {name} looks like a secret; no secret values in the config (the cluster "
                                 "passes the Hugging Face token from its Secret)")
        return v

    @property
    def batch_slots(self) -> int:
        """Sequences the server runs at once: the default number of Exp 1 requests Grace keeps in flight.

        Fewer leave the engine's batch part empty (the benchmark measured 0.73x of the server's limit at 32 in
        flight against 128 slots, at 128-token answers); more only wait in the server's queue. Unset, vLLM's
        OpenAI-server defaults: 128 on CPU, 256 on GPUs (1,024 on H100-class cards, where 256 is a floor).
        """
        return self.max_num_seqs or (VLLM_CPU_SERVER_SEQS if self.gpu_count == 0 else VLLM_GPU_SERVER_SEQS)

    @model_validator(mode="after")
    def _tp_divides_gpus(self) -> Profile:
        if self.gpu_count and self.gpu_count % self.tensor_parallel_size:
            raise ValueError(
                f"tensor_parallel_size {self.tensor_parallel_size} does not divide gpu_count {self.gpu_count}"
            )
        return self


SystemPrompt = Literal["native", "fold"]


class Reasoning(Strict):
    """A model that reasons before it answers (GPT-OSS's harmony format): what the server and Grace both use."""

    format: Literal["harmony"] = "harmony"
    # sent as reasoning_effort and rendered into the system message; medium is harmony's own default
    effort: Literal["low", "medium", "high"] = "medium"
    start_date: str  # the harmony system message's date, fixed (VLLM_SYSTEM_START_DATE on the server)
    max_tokens: Annotated[int, Field(ge=16, le=32768)] = 2048  # reasoning plus answer

    @field_validator("start_date")
    @classmethod
    def _iso_date(cls, v: str) -> str:
        try:
            ok = bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", v)) and date.fromisoformat(v) is not None
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"start_date: {v!r} is not a date YYYY-MM-DD")
        return v


class ModelChecks(Strict):
    """Per-model limits of the preflight's checks (None: Grace's defaults)."""

    # Random-weight test models spread their probability over the whole vocabulary: their option mass means
    # nothing, so they set 0 here; a real model below the default limit is scored at the wrong position.
    min_option_mass: Annotated[float, Field(ge=0, le=1)] | None = None
    # What the preflight lets through with a warning instead of stopping the model: replies cut by max_tokens
    # ("truncated") or unreadable by the rules and the LLM stage ("unreadable"), for a model whose answers are
    # known to be so (random-weight test models; the small local demo model) and that should run anyway.
    preflight_accepts: list[Literal["truncated", "unreadable"]] = []


class ModelConfig(Strict):
    name: str = ""  # filled from the mapping key
    hf_id: str
    revision: str = "main"
    family: str
    enabled: bool = True
    local_path: str | None = None  # weights on disk (local models); else the hub id is served
    variant_of: str | None = None  # e.g. an AWQ build of a full-precision model
    description: str = ""
    parameters_b: Annotated[float, Field(gt=0)] | None = None  # size in billions of parameters (the analysis tables)
    # How the study's instructions reach the model: "native" sends a system message, "fold" puts its text at
    # the start of the first user turn (Gemma-2's template rejects the system role). None: found out from the
    # served model's own chat template when its server starts.
    system_prompt: SystemPrompt | None = None
    reasoning: Reasoning | None = None
    checks: ModelChecks = ModelChecks()
    # Sent with every chat request: e.g. Llama-3's end-of-turn <|eot_id|> where a checkpoint's generation
    # config lacks it (it would generate to max_tokens).
    stop_token_ids: list[Annotated[int, Field(ge=0)]] = []
    # Size of the weights the server loads (GiB), for `grace plan`'s download time; None: unknown (local models
    # are measured on disk).
    weights_gib: Annotated[float, Field(gt=0)] | None = None
    profiles: dict[ProfileName, Profile]

    @field_validator("profiles")
    @classmethod
    def _non_empty(cls, v: dict[str, Profile]) -> dict[str, Profile]:
        if not v:
            raise ValueError("at least one profile is needed")
        return v

    @model_validator(mode="after")
    def _family_rules(self) -> ModelConfig:
        for pname, prof in self.profiles.items():
            if self.family == "gemma2" and prof.dtype == "float16":
                raise ValueError(f"profiles.{pname}.dtype: Gemma-2 must not run in float16 (use bfloat16)")
            if pname == "local" and prof.gpu_count:
                raise ValueError("profiles.local.gpu_count: the local profile runs on the CPU, use 0")
            if pname != "local" and not prof.gpu_count:
                raise ValueError(f"profiles.{pname}.gpu_count: a GPU profile needs at least one GPU")
            if pname in NO_NVLINK and prof.tensor_parallel_size > 1 and prof.env.get("NCCL_P2P_DISABLE") != "1":
                raise ValueError(f"profiles.{pname}.env: tensor parallelism on {pname} (no NVLink) needs "
                                 "NCCL_P2P_DISABLE: \"1\"")
            date_env = prof.env.get("VLLM_SYSTEM_START_DATE")
            if date_env is not None and (self.reasoning is None or date_env != self.reasoning.start_date):
                raise ValueError(f"profiles.{pname}.env.VLLM_SYSTEM_START_DATE: set it once, as reasoning.start_date "
                                 "(the server and Grace's own rendering use that one)")
        return self

    @property
    def pinned(self) -> bool:
        """A local model, or a hub revision that is a commit hash (a branch such as `main` moves)."""
        return bool(self.local_path) or bool(COMMIT.match(self.revision))

    def profile(self, name: str) -> Profile:
        prof = self.profiles.get(name) if is_profile(name) else None
        if prof is None:
            raise ConfigError(f"model {self.name!r} has no profile {name!r} (it has: {', '.join(self.profiles)})")
        return prof

    @property
    def weights(self) -> str:
        """What vLLM is asked to load: the local folder for local models, the hub id otherwise."""
        return str(resolve(self.local_path)) if self.local_path else self.hf_id


class ModelsFile(Strict):
    default_model: str
    aliases: dict[str, str] = {}
    models: dict[str, ModelConfig]

    @model_validator(mode="before")
    @classmethod
    def _names_from_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("models"), dict):
            data = dict(data)
            data["models"] = {
                k: ({**v, "name": k} if isinstance(v, dict) else v) for k, v in data["models"].items()
            }
        return data

    @model_validator(mode="after")
    def _references(self) -> ModelsFile:
        names = set(self.models)
        for alias, target in self.aliases.items():
            if alias in names:
                raise ValueError(f"aliases.{alias}: the alias is also a model name")
            if target not in names:
                raise ValueError(f"aliases.{alias}: unknown model {target!r}")
        if self.default_model not in names and self.default_model not in self.aliases:
            raise ValueError(f"default_model: unknown model {self.default_model!r}")
        for m in self.models.values():
            if m.variant_of and m.variant_of not in names:
                raise ValueError(f"models.{m.name}.variant_of: unknown model {m.variant_of!r}")
        return self


class Sampling(Strict):
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.7
    top_p: Annotated[float, Field(gt=0, le=1)] = 1.0
    max_tokens: Annotated[int, Field(ge=1, le=8192)] = 256
    replications: Annotated[int, Field(ge=1, le=100)] = 1
    seed: int | None = 2026
    # vLLM's CPU build crashes on per-request seeds under concurrency: the seed goes to the server's --seed
    # unless this is set.
    per_request_seed: bool = False


class Retry(Strict):
    attempts: Annotated[int, Field(ge=1, le=20)] = 5
    backoff_initial_s: Annotated[float, Field(ge=0)] = 0.5
    backoff_max_s: Annotated[float, Field(ge=0)] = 30
    request_timeout_s: Annotated[float, Field(gt=0)] = 300


class StudyFiles(Strict):
    input: str
    sample: str


# How a run lists a study's permutable option lists (grace/studies/orders.py): counterbalanced over each design
# cell's trials and replicates, or in the study's own order on every trial (the prompts of older runs).
OptionOrder = Literal["balanced", "fixed"]
DEFAULT_VARIANTS: dict[ExperimentName, Literal["all", "main"]] = {"exp1": "main", "exp2": "all"}


class ExperimentConfig(Strict):
    study: str
    experiment: ExperimentName
    sampling: Sampling = Sampling()
    concurrency: Annotated[int, Field(ge=1, le=4096)] | None = None  # None: the server's batch slots
    retry: Retry = Retry()
    scoring_path: ScoringPath = "server"  # exp2 only
    # The study's prompt wordings this run crosses: "all", "main", or a list of names (the study's own). None:
    # all for exp2 (about one request per trial each), the main wording for exp1.
    variants: Literal["all", "main"] | list[str] | None = None
    option_order: OptionOrder = "balanced"
    order_seed: int = 2026  # the seed of each list's base order (the same orders on every rerun)
    # exp2: a permutable list of at most this many options is scored under each of its rotations and the
    # distributions averaged (CircularEval); a longer list, or 0 here, gets one counterbalanced order per trial.
    rotations_up_to: Annotated[int, Field(ge=0, le=64)] = 8

    @model_validator(mode="after")
    def _path_of_exp2(self) -> ExperimentConfig:
        if self.experiment != "exp2" and self.scoring_path != "server":
            raise ValueError(f"scoring_path {self.scoring_path!r} is for exp2 only ({self.experiment} is served)")
        if isinstance(self.variants, list) and (not self.variants or len(set(self.variants)) != len(self.variants)):
            raise ValueError(f"variants: {self.variants} must name at least one variant, each once")
        return self

    @property
    def key(self) -> str:
        return f"{self.study}/{self.experiment}"

    def chosen_variants(self, known: tuple[str, ...]) -> tuple[str, ...]:
        """The variant names this experiment runs, of the study's `known` ones (main first); a ConfigError names
        an unknown one."""
        chosen = self.variants if self.variants is not None else DEFAULT_VARIANTS[self.experiment]
        if chosen == "all":
            return known
        if chosen == "main":
            return known[:1]
        unknown = [v for v in chosen if v not in known]
        if unknown:
            raise ConfigError(f"{self.key}: variants: unknown prompt variant {unknown[0]!r} of {self.study} "
                              f"(known: {', '.join(known)})")
        return tuple(v for v in known if v in chosen)


class ExtractionEndpoint(Strict):
    """An OpenAI-compatible endpoint outside Grace's serving for the LLM extraction (e.g. a hosted model).

    The API key is never in a config file: it comes from the environment variable `api_key_env` or, in the
    Prefect flow, from the Prefect Secret block `api_key_block`; it is sent as a bearer token and appears in no
    record, log, artifact or error message.
    """

    url: Annotated[str, Field(pattern=r"^https?://\S+$")]
    model: str  # the model name the endpoint serves
    api_key_env: str | None = "GRACE_EXTRACTION_API_KEY"
    api_key_block: str | None = None  # a Prefect Secret block's name (the flow reads it; the CLI uses the env)


class ExtractionConfig(Strict):
    llm_fallback: bool = True
    # Who reads what the rules could not, under vLLM structured outputs:
    #   null (and no endpoint): the model under test, on its own server, right after its experiments;
    #   llm_model: a model of models.yaml, served once after every study model, for all of them;
    #   endpoint: an external OpenAI-compatible endpoint, after every study model.
    llm_model: str | None = None
    endpoint: ExtractionEndpoint | None = None
    concurrency: Annotated[int, Field(ge=1, le=256)] = 16
    max_tokens: Annotated[int, Field(ge=16, le=2048)] = 200

    @model_validator(mode="after")
    def _one_extractor(self) -> ExtractionConfig:
        if self.llm_model and self.endpoint:
            raise ValueError("llm_model and endpoint: choose one extraction model")
        return self

    @property
    def separate(self) -> bool:
        """True when the extraction model is not the model under test (it runs once, after the study models)."""
        return self.llm_fallback and bool(self.llm_model or self.endpoint)


class UtilizationConfig(Strict):
    """How Grace measures the server's load during each stage (grace.serving.metrics): /metrics is read every
    `sample_every_s`, and a stage is flagged when the server's batch was in use less than `min_busy_share` of
    its slots on average (mean requests running / batch slots; the cluster flags GPUs below 40%)."""

    sample_every_s: Annotated[float, Field(gt=0, le=600)] = 15.0
    min_busy_share: Annotated[float, Field(ge=0, le=1)] = 0.40


class ExperimentsFile(Strict):
    studies: dict[str, StudyFiles]
    experiments: list[ExperimentConfig]
    extraction: ExtractionConfig = ExtractionConfig()
    utilization: UtilizationConfig = UtilizationConfig()

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentsFile:
        seen: set[str] = set()
        for i, e in enumerate(self.experiments):
            if e.study not in self.studies:
                raise ValueError(f"experiments.{i}.study: unknown study {e.study!r}")
            if e.key in seen:
                raise ValueError(f"experiments.{i}: {e.key} is listed twice")
            seen.add(e.key)
        return self


T = TypeVar("T", bound=BaseModel)


def _format_error(path: Path, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key (typo?)"
    elif first["type"] == "literal_error":
        msg = f"{msg}, got {first.get('input')!r}"
    extra = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    return f"{path}: {loc or '<top>'}: {msg}{extra}"


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error, not silently merged."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (a model or field given twice)", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _load_yaml(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from None


def parse_yaml_file(cls: type[T], path: Path) -> T:
    """A YAML file as `cls` (duplicate keys refused); a mistake is one ConfigError line naming the file and field."""
    data = _load_yaml(path)
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_error(path, e)) from None


class Config:
    """Both files, loaded and cross-checked."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = Path(directory) if directory else config_dir()
        self.models_path = self.directory / "models.yaml"
        self.experiments_path = self.directory / "experiments.yaml"
        self.models_file = parse_yaml_file(ModelsFile, self.models_path)
        self.experiments_file = parse_yaml_file(ExperimentsFile, self.experiments_path)
        if self.experiments_file.extraction.llm_model:
            self.model(self.experiments_file.extraction.llm_model, where="extraction.llm_model")

    @cached_property
    def models(self) -> dict[str, ModelConfig]:
        return self.models_file.models

    def model(self, name: str, where: str = "") -> ModelConfig:
        name = self.models_file.aliases.get(name, name)
        if name not in self.models:
            known = ", ".join(sorted([*self.models, *self.models_file.aliases]))
            src = f"{self.experiments_path}: {where}: " if where else ""
            raise ConfigError(f"{src}unknown model {name!r} (known: {known})")
        return self.models[name]

    def models_for(self, profile: str, names: list[str] | None = None) -> list[ModelConfig]:
        """Named models (or all enabled ones having the profile), in config order."""
        if profile not in PROFILES:
            raise ConfigError(f"unknown profile {profile!r} (known: {', '.join(PROFILES)})")
        if names:
            chosen = [self.model(n) for n in names]
            for m in chosen:
                m.profile(profile)
            return chosen
        if profile == "local":
            return [self.model(self.models_file.default_model)]
        return [m for m in self.models.values() if m.enabled and profile in m.profiles]

    @property
    def experiments(self) -> list[ExperimentConfig]:
        return self.experiments_file.experiments

    def experiment(self, study: str, experiment: str) -> ExperimentConfig:
        for e in self.experiments:
            if e.study == study and e.experiment == experiment:
                return e
        raise ConfigError(f"{self.experiments_path}: no experiment {study}/{experiment}")

    def study_file(self, study: str, sample: bool) -> Path:
        files = self.experiments_file.studies.get(study)
        if files is None:
            known = ", ".join(self.experiments_file.studies)
            raise ConfigError(f"{self.experiments_path}: unknown study {study!r} (known: {known})")
        return resolve(files.sample if sample else files.input)

    def unpinned(self) -> dict[str, str]:
        """Hub models whose revision is a branch or tag name, not a commit: their weights can change."""
        return {m.name: m.revision for m in self.models.values() if not m.pinned}

    def warnings(self) -> list[str]:
        return [f"{self.models_path}: models.{name}.revision: {rev!r} is not a commit hash (a branch or tag moves): "
                "the weights can change under the same config (pin a commit for a published study)"
                for name, rev in self.unpinned().items()]

    def snapshot(self) -> dict[str, Any]:
        return {
            "models": self.models_file.model_dump(mode="json"),
            "experiments": self.experiments_file.model_dump(mode="json"),
        }


def load_config(directory: Path | str | None = None) -> Config:
    return Config(Path(directory) if directory else None)
