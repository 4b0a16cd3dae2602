#!/usr/bin/env bash
# The test command: set up what is missing (idempotent), lint, type-check, then run the whole suite against the
# real local vLLM server and a real Prefect server. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy  # the type check: files and settings in pyproject.toml [tool.mypy]
exec .venv/bin/python -m pytest "$@"
