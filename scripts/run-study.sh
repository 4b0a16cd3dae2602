#!/usr/bin/env bash
# The main job on the embedded default, from a fresh clone: set up (idempotent), start the local Prefect
# server and a process worker (left running for the UI), register grace/full-study, run it and wait.
# Extra arguments are passed to `prefect deployment run` (e.g. -p sample=false -p 'models=["toy"]').
# `bash scripts/stop.sh` stops the Prefect server and worker.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/prefect-up.sh
export PREFECT_HOME=$PWD/.grace/prefect
export PREFECT_API_URL=http://127.0.0.1:${GRACE_PREFECT_PORT:-4200}/api
P=.venv/bin/prefect
.venv/bin/grace check-config
"$P" --no-prompt deploy --name full-study > .grace/run/deploy.log 2>&1 || { cat .grace/run/deploy.log >&2; exit 1; }
echo "deployment grace/full-study registered; running it (the UI shows it live) ..."
out=$("$P" deployment run grace/full-study "$@" 2>&1) || { echo "$out" >&2; exit 1; }
echo "$out" | grep -E "UUID|URL" || true
id=$(echo "$out" | sed -n 's/.*UUID: *\([0-9a-f-]\{36\}\).*/\1/p' | head -1)
[ -n "$id" ] || { echo "$out" >&2; echo "could not read the flow run id" >&2; exit 1; }
export GRACE_VIEW_URL=http://127.0.0.1:${GRACE_VIEW_PORT:-4300} GRACE_VIEW_ROOT=$PWD/results  # as prefect-up.sh
.venv/bin/python -m flows.wait "$id"
