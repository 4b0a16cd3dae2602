"""Structured extraction of Exp 1 replies: rules first, then an LLM under vLLM structured outputs."""

from grace.extract.engine import ExtractSummary, Reply, extract_rows, extract_stage
from grace.extract.models import FIELD_MODELS, STATUSES

__all__ = ["FIELD_MODELS", "STATUSES", "ExtractSummary", "Reply", "extract_rows", "extract_stage"]
