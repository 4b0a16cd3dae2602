#!/usr/bin/env bash
# The test command: set up what is missing (idempotent), lint, type-check, then run the whole suite against the
# real local vLLM server and a real Prefect server. Extra arguments go to pytest.
# --fast (first argument): the same, but only the tests that start no vLLM server, no Prefect and no browser
# (markers derived from the fixtures a test uses: tests/support/lanes.py), on two pytest-xdist workers (they share
# no server, so they run side by side: 2 min where one process takes 3.5); for every change.
set -euo pipefail
cd "$(dirname "$0")/.."
lane=()
if [ "${1:-}" = "--fast" ]; then
  shift
  lane=(-m "not server and not prefect and not browser" -n 2)
fi
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy  # the type check: files and settings in pyproject.toml [tool.mypy]
exec .venv/bin/python -m pytest ${lane[@]+"${lane[@]}"} "$@"
