"""A small real HTTP server speaking the Kubernetes REST API for the objects Grace uses (tests only)."""

from tests.fake_kube.server import FakeKube, Scenario

__all__ = ["FakeKube", "Scenario"]
