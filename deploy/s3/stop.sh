#!/usr/bin/env sh
# Stops the versitygw started by deploy/s3/start.sh DIR (by the pid it recorded) and waits
# until it has exited (SIGTERM, then SIGKILL after KINDRED_S3_STOP_TIMEOUT seconds, default 10).
# Data stays in DIR. Stopping a server that is not running is a no-op.
set -eu

if [ $# -ne 1 ]; then echo "usage: $0 DIR" >&2; exit 2; fi
PIDFILE=$1/versitygw.pid
WAIT=${KINDRED_S3_STOP_TIMEOUT:-10}
[ -f "$PIDFILE" ] || exit 0
PID=$(cat "$PIDFILE")
case $PID in ''|*[!0-9]*) rm -f "$PIDFILE"; exit 0;; esac

# Only signal the pid if it still is a versitygw (it may have exited and the pid been reused).
if [ -r "/proc/$PID/cmdline" ] && ! tr '\0' ' ' <"/proc/$PID/cmdline" | grep -q versitygw; then
  rm -f "$PIDFILE"
  exit 0
fi
if kill -0 "$PID" 2>/dev/null; then
  kill "$PID" 2>/dev/null || true
  i=0
  while kill -0 "$PID" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -gt $((WAIT * 10)) ]; then
      echo "s3/stop: versitygw (pid $PID) ignored SIGTERM for ${WAIT}s; killing it" >&2
      kill -9 "$PID" 2>/dev/null || true
      sleep 0.1
      break
    fi
    sleep 0.1
  done
fi
rm -f "$PIDFILE"
