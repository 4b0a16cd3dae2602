"""Serving backends: local vLLM process, an external endpoint, and (later) Kubernetes."""

from grace.serving.base import Endpoint, probe, wait_ready
from grace.serving.external import ExternalServer
from grace.serving.local import LocalVLLMServer, stop_stale_servers
from grace.serving.managed import ManagedServer

__all__ = [
    "Endpoint", "ExternalServer", "LocalVLLMServer", "ManagedServer", "probe", "stop_stale_servers", "wait_ready",
]
