"""Serving backends: a local vLLM process, an external endpoint, and a Deployment on the cluster.

The cluster's backend (grace.serving.kubernetes.KubernetesServer) is not re-exported here: importing it loads
the kubernetes client, which only the cluster profiles need (grace.pipeline.backend_factory imports it then).
"""

from grace.serving.base import FALLBACK_CONCURRENCY, Endpoint, in_flight, probe, wait_ready
from grace.serving.external import ExternalServer
from grace.serving.local import LocalVLLMServer, stop_stale_servers
from grace.serving.managed import ManagedServer

__all__ = [
    "FALLBACK_CONCURRENCY", "Endpoint", "ExternalServer", "LocalVLLMServer", "ManagedServer", "in_flight", "probe",
    "stop_stale_servers", "wait_ready",
]
