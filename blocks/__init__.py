"""Prefect blocks of Grace (orchestration layer): cluster settings and the Hugging Face token."""
