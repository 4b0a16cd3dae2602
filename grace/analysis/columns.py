"""The columns of the all-models tables, declared once: name, type, meaning, allowed values, and where the value
comes from. The tables (tables.py), the codebook (datapackage.json, codebook.py) and their order follow these lists.

A table's list holds fixed columns and three placeholders that a study fills: the stimulus columns as its input CSV
names them (STIMULUS), the design cell's columns not already among them (DESIGN), and the extracted answer fields
of the study's extraction schema (EXTRACTED). A new record field becomes a column with one line here, e.g.
`Column("variant", "string", "the prompt variant asked", exp1=lambda c: c.record.variant)` in EXP1_COLUMNS.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from grace.config import ModelConfig, Profile, ScoringPath, is_profile
from grace.records import Exp1Record, Exp2Record, ExtractedRecord, ExtractionMethod, OptionScores
from grace.statuses import Exp1Status, Exp2Status, ExtractionStatus

# Frictionless Table Schema field types (https://datapackage.org/standard/table-schema/#field-types) we use.
FieldType = Literal["string", "integer", "number", "boolean"]


@dataclass(frozen=True)
class ModelMeta:
    """What config/models.yaml (as snapshotted in run.json) says about a model, and the run's profile."""

    name: str
    config: ModelConfig | None  # None: the model is not in the config (its metadata columns stay empty)
    profile: str | None  # None: unknown (a CLI-built folder without run.json, for a model with several profiles)

    def quantization(self) -> str | None:
        prof = self._profile()
        return None if prof is None else (prof.quantization or "none")

    def dtype(self) -> str | None:
        prof = self._profile()
        return None if prof is None else prof.dtype

    def _profile(self) -> Profile | None:
        if self.config is None or self.profile is None or not is_profile(self.profile):
            return None
        return self.config.profiles.get(self.profile)


@dataclass(frozen=True)
class Exp1Row:
    """What one Exp 1 row is made from: a reply and the answer extracted from it (None: not extracted)."""

    meta: ModelMeta
    record: Exp1Record
    extracted: ExtractedRecord | None
    trial: dict[str, str]  # the input CSV's row as read (empty: the trial's columns were found nowhere)
    answers: dict[str, Any]  # the extracted fields as the study flattens them into columns (Extraction.flatten)


@dataclass(frozen=True)
class Exp2Row:
    """What one Exp 2 row is made from: one option of one question of a scored trial (None: the trial has no
    scores, its status says why, and it keeps one row)."""

    meta: ModelMeta
    record: Exp2Record
    trial: dict[str, str]
    question: str | None = None
    scores: OptionScores | None = None
    option: str | None = None
    index: int | None = None


@dataclass(frozen=True)
class Column:
    name: str
    type: FieldType
    description: str
    exp1: Callable[[Exp1Row], Any] | None = None  # the value in an Exp 1 row
    exp2: Callable[[Exp2Row], Any] | None = None  # the value in an Exp 2 row
    enum: tuple[str, ...] | None = None  # allowed values
    unit: str | None = None
    meta: Callable[[ModelMeta], Any] | None = None  # a model column: the same value in both tables

    def value(self, row: Exp1Row | Exp2Row) -> Any:
        if self.meta is not None:
            return self.meta(row.meta)
        if isinstance(row, Exp1Row):
            return None if self.exp1 is None else self.exp1(row)
        return None if self.exp2 is None else self.exp2(row)


@dataclass(frozen=True)
class Placeholder:
    """Where a study's own columns go (see the module docstring)."""

    kind: Literal["stimulus", "design", "extracted"]
    description: str = ""


STIMULUS = Placeholder("stimulus", "the input CSV's columns, named and ordered as in the file")
DESIGN = Placeholder("design", "the design cell's columns (Study.condition) not already among the stimulus columns")
EXTRACTED = Placeholder("extracted", "the study's extracted answer fields (its extraction schema)")

Entry = Column | Placeholder


def _prob_raw(r: Exp2Row) -> float | None:
    if r.scores is None or r.option is None:
        return None
    lp = r.scores.logprobs.get(r.option)
    return None if lp is None else math.exp(lp)


def _scores(get: Callable[[OptionScores, str], Any]) -> Callable[[Exp2Row], Any]:
    return lambda r: None if r.scores is None or r.option is None else get(r.scores, r.option)


MODEL_COLUMNS: list[Entry] = [
    Column("model_name", "string", "the model's name in config/models.yaml", meta=lambda m: m.name),
    Column("model_family", "string", "the model family (config/models.yaml `family`)",
           meta=lambda m: m.config.family if m.config else None),
    Column("model_parameters_b", "number", "parameters of the model (config/models.yaml `parameters_b`)",
           unit="billions", meta=lambda m: m.config.parameters_b if m.config else None),
    Column("model_quantization", "string", "weight quantization of the profile it ran on (`none`: full precision; "
           "empty: the profile is not known)", meta=lambda m: m.quantization()),
    Column("model_dtype", "string", "the dtype vLLM served it in on that profile", meta=lambda m: m.dtype()),
    Column("model_profile", "string", "the hardware profile it ran on (local, rtx3090, a100, ...)",
           meta=lambda m: m.profile),
    Column("model_variant_of", "string", "the full-precision model this one is a quantized (or other) variant of",
           meta=lambda m: m.config.variant_of if m.config else None),
]

EXP1_COLUMNS: list[Entry] = [
    *MODEL_COLUMNS,
    Column("model_revision", "string", "the weights' revision the reply came from (as recorded)",
           exp1=lambda r: r.record.model_revision),
    Column("study", "string", "the study (its name in Grace)", exp1=lambda r: r.record.study),
    Column("trial_id", "string", "the trial's stable key (study name and identifying columns, or its row number)",
           exp1=lambda r: r.record.trial_id),
    Column("replicate", "integer", "which repetition of the trial (0, 1, ...; experiments.yaml `replications`)",
           exp1=lambda r: r.record.replicate),
    STIMULUS,
    DESIGN,
    Column("response", "string", "the model's raw reply, exactly as returned (newlines and quotes kept)",
           exp1=lambda r: r.record.response),
    Column("status", "string", "the reply's status: ok, or why it is not an answer", enum=get_args(Exp1Status),
           exp1=lambda r: r.record.status),
    Column("error", "string", "what failed, for a status other than ok", exp1=lambda r: r.record.error),
    Column("finish_reason", "string", "why generation stopped (stop: the model ended; length: max_tokens)",
           exp1=lambda r: r.record.finish_reason),
    Column("prompt_tokens", "integer", "tokens of the prompt", exp1=lambda r: r.record.prompt_tokens),
    Column("completion_tokens", "integer", "tokens generated (reasoning included)",
           exp1=lambda r: r.record.completion_tokens),
    Column("reasoning", "string", "a reasoning model's analysis before its answer (not part of response)",
           exp1=lambda r: r.record.reasoning),
    Column("reasoning_tokens", "integer", "of completion_tokens, those spent reasoning",
           exp1=lambda r: r.record.reasoning_tokens),
    Column("latency_s", "number", "time from request to full reply", unit="seconds",
           exp1=lambda r: r.record.latency_s),
    Column("temperature", "number", "sampling temperature", exp1=lambda r: r.record.sampling.get("temperature")),
    Column("max_tokens", "integer", "the reply's token budget", exp1=lambda r: r.record.sampling.get("max_tokens")),
    Column("prompt_version", "string", "the prompt's version (`+fold`: instructions folded into the user turn)",
           exp1=lambda r: r.record.prompt_version),
    Column("extraction_status", "string", "the extracted answer: every field read (ok), some (partial), none "
           "(unparseable), or a refusal; empty: the reply was not extracted", enum=get_args(ExtractionStatus),
           exp1=lambda r: r.extracted.status if r.extracted else None),
    Column("extraction_method", "string", "what settled the extracted answer: rules, or the LLM stage",
           enum=get_args(ExtractionMethod), exp1=lambda r: r.extracted.method if r.extracted else None),
    Column("extraction_model", "string", "the LLM that read the reply (empty: the rules alone)",
           exp1=lambda r: r.extracted.extraction_model if r.extracted else None),
    EXTRACTED,
]

EXP2_COLUMNS: list[Entry] = [
    *MODEL_COLUMNS,
    Column("model_revision", "string", "the weights' revision the scores came from (as recorded)",
           exp2=lambda r: r.record.model_revision),
    Column("study", "string", "the study (its name in Grace)", exp2=lambda r: r.record.study),
    Column("trial_id", "string", "the trial's stable key (study name and identifying columns, or its row number)",
           exp2=lambda r: r.record.trial_id),
    STIMULUS,
    DESIGN,
    Column("status", "string", "the trial's scoring status: ok, or why it has no scores (then one row, no "
           "question)", enum=get_args(Exp2Status), exp2=lambda r: r.record.status),
    Column("error", "string", "what failed, for a status other than ok", exp2=lambda r: r.record.error),
    Column("scoring_path", "string", "how the options were scored", enum=get_args(ScoringPath),
           exp2=lambda r: r.record.path),
    Column("prompt_version", "string", "the prompt's version (`+fold`: instructions folded into the user turn)",
           exp2=lambda r: r.record.prompt_version),
    Column("question", "string", "the question scored (study 1: prior, posterior, knowledge; study 2: utterance)",
           exp2=lambda r: r.question),
    Column("option", "string", "one answer option, as the model would write it", exp2=lambda r: r.option),
    Column("option_index", "integer", "the option's position among the question's options (0, 1, ...)",
           exp2=lambda r: r.index),
    Column("n_tokens", "integer", "tokens of the option", exp2=_scores(lambda s, o: len(s.token_ids.get(o, [])))),
    Column("logprob", "number", "log-probability of the option's tokens after the prompt (natural log, summed)",
           exp2=_scores(lambda s, o: s.logprobs.get(o))),
    Column("prob", "number", "probability of the option, normalised over the question's options (sums to 1)",
           exp2=_scores(lambda s, o: s.probs.get(o))),
    Column("prob_raw", "number", "exp(logprob): the probability before normalising over the options",
           exp2=_prob_raw),
    Column("prob_length_norm", "number", "normalised over the options from the per-token mean log-probability "
           "(length-normalised)", exp2=_scores(lambda s, o: s.probs_norm.get(o))),
    Column("option_mass", "number", "the question's summed raw probability of all its options (near 1: the prompt "
           "ends where an answer begins)", exp2=_scores(lambda s, o: s.option_mass)),
    Column("entropy", "number", "entropy of the question's normalised probabilities", unit="nats",
           exp2=_scores(lambda s, o: s.entropy)),
    Column("is_argmax", "boolean", "the question's most probable option (normalised over the options)",
           exp2=_scores(lambda s, o: o == s.argmax)),
]

TABLES: dict[str, list[Entry]] = {"exp1": EXP1_COLUMNS, "exp2": EXP2_COLUMNS}


@dataclass
class StudyColumns:
    """A study's own columns in the tables: its stimulus, design and extracted columns, filled in."""

    stimulus: list[Column] = field(default_factory=list)
    design: list[Column] = field(default_factory=list)
    extracted: list[Column] = field(default_factory=list)

    def expand(self, entries: list[Entry]) -> list[Column]:
        out: list[Column] = []
        for e in entries:
            out += getattr(self, e.kind) if isinstance(e, Placeholder) else [e]
        return out
