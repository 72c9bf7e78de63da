#!/usr/bin/env bash
# Stop a c-icap started by bench/c-icap/start.sh:  bench/c-icap/stop.sh DIR
# Kills the PID recorded in DIR/run.pid (SIGTERM, then SIGKILL after 5 s), and any of its
# child processes (looked up by parent PID before the kill) that outlive it.
set -euo pipefail
dir="${1:?usage: stop.sh DIR}"
pidfile="$dir/run.pid"
if [ ! -f "$pidfile" ]; then echo "stop.sh: no $pidfile" >&2; exit 0; fi
pid="$(cat "$pidfile")"
if ! kill -0 "$pid" 2>/dev/null; then rm -f "$pidfile"; exit 0; fi

children="$(pgrep -P "$pid" || true)"
kill -TERM "$pid" 2>/dev/null || true
for _ in $(seq 1 50); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
# c-icap's main process normally takes its children down; make sure, by their PIDs.
for child in $children; do
  for _ in $(seq 1 20); do
    kill -0 "$child" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$child" 2>/dev/null; then kill -KILL "$child" 2>/dev/null || true; fi
done
rm -f "$pidfile"
echo "stopped c-icap pid=$pid"
