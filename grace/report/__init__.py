"""Validation and the data-quality report of a run folder (Markdown, JSON, PNG plots)."""

from grace.report.build import build_report

__all__ = ["build_report"]
