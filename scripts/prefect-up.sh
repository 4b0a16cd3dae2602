#!/usr/bin/env bash
# Start the embedded Prefect server (SQLite under .grace/prefect), the trial viewer over results/ and a process
# worker for the `grace-local` pool, unless they are already running. Idempotent; `scripts/stop.sh` stops them.
set -euo pipefail
cd "$(dirname "$0")/.."
export PREFECT_HOME=$PWD/.grace/prefect
PORT=${GRACE_PREFECT_PORT:-4200}
export PREFECT_API_URL=http://127.0.0.1:$PORT/api
export PREFECT_SERVER_ANALYTICS_ENABLED=false
# the worker poll interval comes from prefect.toml ([worker] query_seconds)
RUN=.grace/run; mkdir -p "$RUN" "$PREFECT_HOME"
P=.venv/bin/prefect

healthy() { curl -fsS -m 3 "$PREFECT_API_URL/health" >/dev/null 2>&1; }
running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if ! healthy; then
  echo "starting Prefect server on http://127.0.0.1:$PORT ..."
  set -m
  nohup "$P" server start --host 127.0.0.1 --port "$PORT" > "$RUN/prefect-server.log" 2>&1 &
  echo $! > "$RUN/prefect-server.pid"
  set +m
  for _ in $(seq 1 120); do healthy && break; sleep 1; done
  healthy || { echo "Prefect server did not become healthy; see $RUN/prefect-server.log" >&2; tail -20 "$RUN/prefect-server.log" >&2; exit 1; }
fi
if ! "$P" work-pool inspect grace-local >/dev/null 2>&1; then
  "$P" work-pool create grace-local --type process >/dev/null
fi
# the trial viewer of every run under results/ (grace view --root), linked from each run's grace-run artifact:
# the worker's flow runs learn its address from GRACE_VIEW_URL and GRACE_VIEW_ROOT
VIEW_PORT=${GRACE_VIEW_PORT:-4300}
export GRACE_VIEW_URL=http://127.0.0.1:$VIEW_PORT GRACE_VIEW_ROOT=$PWD/results
mkdir -p results
if ! running "$RUN/grace-view.pid"; then
  echo "starting the trial viewer on $GRACE_VIEW_URL ..."
  set -m
  nohup .venv/bin/grace view --root results --port "$VIEW_PORT" > "$RUN/grace-view.log" 2>&1 &
  echo $! > "$RUN/grace-view.pid"
  set +m
fi
if ! running "$RUN/prefect-worker.pid"; then
  echo "starting process worker for pool grace-local ..."
  set -m
  nohup "$P" worker start --pool grace-local --type process > "$RUN/prefect-worker.log" 2>&1 &
  echo $! > "$RUN/prefect-worker.pid"
  set +m
fi
# failure notifications: an automation through the block named by GRACE_NOTIFY_BLOCK (or the Prefect Variable
# grace_notify_block), e.g. slack-webhook/lab-alerts; says so when none is configured (flows/notify.py)
.venv/bin/python -m flows.notify
echo "Prefect UI: http://127.0.0.1:$PORT"
echo "Trial viewer: $GRACE_VIEW_URL"
