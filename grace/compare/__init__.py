"""The human comparison: how human-like each model in a run folder is, against published human data."""

from grace.compare.report import compare_run

__all__ = ["compare_run"]
