#!/usr/bin/env bash
# Stop what scripts/prefect-up.sh started (worker, then server, then the trial viewer), and any orphaned vLLM server of Grace (one whose owning process is gone).
set -uo pipefail
cd "$(dirname "$0")/.."
RUN=.grace/run
stop_pid() {
  local f=$1; [ -f "$f" ] || return 0
  local pid; pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
  fi
  rm -f "$f"
}
stop_pid "$RUN/prefect-worker.pid" && echo "worker stopped"
stop_pid "$RUN/prefect-server.pid" && echo "Prefect server stopped"
stop_pid "$RUN/grace-view.pid" && echo "trial viewer stopped"
.venv/bin/python -c 'from grace.serving import stop_stale_servers as s; n=s(only_orphans=True); print(f"{len(n)} orphaned vLLM server(s) stopped")'
