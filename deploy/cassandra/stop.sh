#!/usr/bin/env bash
# stop.sh DIR [--now] — stops the Cassandra that start.sh started on DIR. SIGTERM first (Cassandra
# drains: flushes memtables and stops cleanly), SIGKILL after CASSANDRA_STOP_TIMEOUT seconds
# (default 60). With --now it sends SIGKILL at once (tests that throw the data away).
# Succeeds when nothing is running.
set -euo pipefail
die() { echo "stop.sh: $*" >&2; exit 1; }
[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: stop.sh DIR [--now]"
DIR=$1
NOW=${2:-}
[ -z "$NOW" ] || [ "$NOW" = "--now" ] || die "unknown option $NOW"
PIDFILE="$DIR/cassandra.pid"
[ -f "$PIDFILE" ] || { echo "stop.sh: no Cassandra running on $DIR" >&2; exit 0; }
PID=$(cat "$PIDFILE")
case "$PID" in '' | *[!0-9]*) die "bad pid file $PIDFILE" ;; esac
# Only signal the process if it really is the Cassandra of this DIR (the pid may have been reused).
is_ours() { kill -0 "$PID" 2>/dev/null && tr '\0' ' ' <"/proc/$PID/cmdline" 2>/dev/null | grep -q -- "-Dcassandra.storagedir=$(cd "$DIR" && pwd)/data"; }
if ! is_ours; then
  rm -f "$PIDFILE"
  echo "stop.sh: Cassandra on $DIR was not running" >&2
  exit 0
fi
if [ "$NOW" = "--now" ]; then
  kill -KILL "$PID" 2>/dev/null || true
else
  kill -TERM "$PID" 2>/dev/null || true
  deadline=$(($(date +%s) + ${CASSANDRA_STOP_TIMEOUT:-60}))
  while kill -0 "$PID" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
  if kill -0 "$PID" 2>/dev/null; then
    echo "stop.sh: pid $PID still running after SIGTERM; sending SIGKILL" >&2
    kill -KILL "$PID" 2>/dev/null || true
  fi
fi
for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$PID" 2>/dev/null && die "pid $PID did not exit"
rm -f "$PIDFILE"
echo "stop.sh: stopped Cassandra pid $PID" >&2
