#!/usr/bin/env bash
# The test command: set up what is missing (idempotent), lint, type-check, then run the whole suite against the
# real local vLLM server and a real Prefect server. Extra arguments go to pytest.
# The suite runs on two pytest-xdist workers (GRACE_TEST_WORKERS=N for N, 0 for one process): `--dist loadgroup`
# puts the tests that start Prefect, Chromium or the larger shared server (SmolLM2) on one worker, those that
# start only the small toy models' servers on the other, and spreads the tests that start nothing (memory: each
# server once; tests/support/lanes.py, group_of).
# --fast (first argument): only the tests that start no vLLM server, no Prefect and no browser (markers derived
# from the fixtures a test uses: tests/support/lanes.py); for every change.
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${GRACE_TEST_WORKERS:-2}
lane=(-n "$workers" --dist loadgroup)
if [ "${1:-}" = "--fast" ]; then
  shift
  lane=(-m "not server and not prefect and not browser" -n "$workers")
fi
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy  # the type check: files and settings in pyproject.toml [tool.mypy]
exec .venv/bin/python -m pytest "${lane[@]}" "$@"
