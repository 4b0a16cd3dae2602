"""Who reads what the rules could not: the extraction model, when it is not the model under test.

`extraction.llm_model` names a model of config/models.yaml (served once, after every study model, for all of
them); `extraction.endpoint` names an external OpenAI-compatible endpoint (a hosted model) whose API key comes
from an environment variable or, in the flow, a Prefect Secret block. The key travels only in the request's
Authorization header: no record, log line, artifact or error message carries it.
"""

from __future__ import annotations

import os

from grace.config import ExtractionConfig
from grace.errors import ConfigError
from grace.serving.base import Endpoint


def external_endpoint(settings: ExtractionConfig, api_key: str | None = None) -> Endpoint:
    """The endpoint of `extraction.endpoint`; the key given (a Secret block's value), else from the environment."""
    ep = settings.endpoint
    if ep is None:
        raise ConfigError("extraction.endpoint is not set")
    key = api_key or (os.environ.get(ep.api_key_env) if ep.api_key_env else None)
    if not key and (ep.api_key_env or ep.api_key_block):
        where = " or ".join(w for w in (f"${ep.api_key_env}" if ep.api_key_env else "",
                                        f"the Prefect Secret block {ep.api_key_block!r}" if ep.api_key_block else "")
                            if w)
        raise ConfigError(f"extraction.endpoint: no API key for {ep.url} (set {where})")
    return Endpoint(ep.url.rstrip("/").removesuffix("/v1"), ep.model, revision="external", api_key=key or None)
