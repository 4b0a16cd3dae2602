"""Prefect tasks: thin wrappers over grace's stages, one task per model x study x experiment."""
