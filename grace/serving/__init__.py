"""Serving backends: local vLLM process, an external endpoint, and (later) Kubernetes."""

from grace.serving.base import FALLBACK_CONCURRENCY, Endpoint, in_flight, probe, wait_ready
from grace.serving.external import ExternalServer
from grace.serving.local import LocalVLLMServer, stop_stale_servers
from grace.serving.managed import ManagedServer

__all__ = [
    "FALLBACK_CONCURRENCY", "Endpoint", "ExternalServer", "LocalVLLMServer", "ManagedServer", "in_flight", "probe",
    "stop_stale_servers", "wait_ready",
]
