#!/usr/bin/env bash
# The test command: set up what is missing (idempotent), lint, then run the whole suite against the real
# local vLLM server and a real Prefect server. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
