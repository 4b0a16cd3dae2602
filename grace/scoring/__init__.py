"""Experiment 2: answer-option probabilities from log-probabilities (server and in-process paths)."""

from grace.scoring.engine import run_exp2, run_exp2_inprocess, run_exp2_sync
from grace.scoring.errors import ScoringError

__all__ = ["ScoringError", "run_exp2", "run_exp2_inprocess", "run_exp2_sync"]
