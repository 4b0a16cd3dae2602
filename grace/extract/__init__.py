"""Structured extraction of Exp 1 replies: rules first, then an LLM under vLLM structured outputs."""

from grace.extract.engine import ExtractSummary, Reply, extract_rows, extract_stage
from grace.extract.plugin import AnswerFields, Extraction
from grace.statuses import EXTRACTION_STATUSES as STATUSES

__all__ = ["STATUSES", "AnswerFields", "ExtractSummary", "Extraction", "Reply", "extract_rows", "extract_stage"]
