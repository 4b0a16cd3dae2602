"""Scoring failures that become a named per-row status instead of a silent zero."""

from __future__ import annotations

from grace.errors import GraceError
from grace.statuses import ScoringFailure


class ScoringError(GraceError):
    """One trial could not be scored; `status` is what its record says.

    bad_option: an option tokenizes to nothing, or two options to the same tokens.
    context_overflow: prompt + option exceed the model's context (HTTP 400 from the server).
    no_logprobs: the server answered without (finite) log-probabilities for the requested tokens.
    rejected: any other HTTP 4xx. error: transient failures after all retries (redone on resume).
    """

    def __init__(self, status: ScoringFailure, message: str, attempts: int = 1) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts
