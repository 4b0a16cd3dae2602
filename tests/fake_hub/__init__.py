"""A small real HTTP server speaking the Hugging Face Hub's HTTP API for model repos (tests only)."""

from tests.fake_hub.server import FakeHub

__all__ = ["FakeHub"]
