"""Helpers of the scoring tests that the scoring itself does not need."""

from __future__ import annotations

from typing import Any

from grace.scoring.server import parse_choice


def parse_next_token(data: dict[str, Any], wanted: list[int]) -> dict[int, float]:
    """The requested tokens' log-probabilities from a completion answered with `return_tokens_as_token_ids`."""
    return parse_choice((data.get("choices") or [{}])[0], wanted)
