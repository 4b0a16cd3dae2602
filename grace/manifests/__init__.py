"""Kubernetes manifests: cluster settings, object builders, policy checks, schema validation, writing."""
