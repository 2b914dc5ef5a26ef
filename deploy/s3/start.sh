#!/usr/bin/env sh
# Starts a local S3-compatible server (versitygw, posix backend) on loopback, for development
# and tests, and waits until it answers.
#
#   deploy/s3/start.sh DIR PORT
#
# DIR holds everything: data/ (one directory per bucket), iam/, sidecar/ (object metadata, so
# no xattrs are needed), versitygw.log and versitygw.pid. Credentials come from
# KINDRED_S3_ACCESS_KEY / KINDRED_S3_SECRET_KEY (dev defaults below; never use them outside
# loopback). Region: KINDRED_S3_REGION (default us-east-1). The binary is installed on first
# use by deploy/s3/install.sh. Starting an already running server in DIR is a no-op.
# Prints "endpoint http://127.0.0.1:PORT" when ready; exits non-zero (log tail on stderr) if not.
set -eu

if [ $# -ne 2 ]; then echo "usage: $0 DIR PORT" >&2; exit 2; fi
DIR=$1
PORT=$2
case $PORT in ''|*[!0-9]*) echo "s3/start: PORT must be a number, got '$PORT'" >&2; exit 2;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
ACCESS=${KINDRED_S3_ACCESS_KEY:-kindred-dev}
SECRET=${KINDRED_S3_SECRET_KEY:-kindred-dev-secret}
REGION=${KINDRED_S3_REGION:-us-east-1}
WAIT=${KINDRED_S3_START_TIMEOUT:-30}

mkdir -p "$DIR/data" "$DIR/iam" "$DIR/sidecar"
DIR=$(cd "$DIR" && pwd)
PIDFILE=$DIR/versitygw.pid
LOG=$DIR/versitygw.log

answers() {
  # Any HTTP answer counts (an unsigned request gets 403 AccessDenied): the listener is up.
  if command -v curl >/dev/null 2>&1; then
    code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$PORT/" 2>/dev/null || true)
    [ -n "$code" ] && [ "$code" != "000" ]
  else
    node -e "fetch('http://127.0.0.1:$PORT/',{signal:AbortSignal.timeout(2000)}).then(()=>process.exit(0),()=>process.exit(1))"
  fi
}

if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  if answers; then echo "endpoint http://127.0.0.1:$PORT"; exit 0; fi
  echo "s3/start: versitygw (pid $(cat "$PIDFILE")) runs in $DIR but does not answer on 127.0.0.1:$PORT" >&2
  exit 1
fi

BIN=$(sh "$HERE/install.sh")

ROOT_ACCESS_KEY=$ACCESS ROOT_SECRET_KEY=$SECRET VGW_REGION=$REGION \
  nohup "$BIN" --port "127.0.0.1:$PORT" --region "$REGION" --iam-dir "$DIR/iam" --quiet --keep-alive \
  posix --sidecar "$DIR/sidecar" "$DIR/data" >"$LOG" 2>&1 </dev/null &
PID=$!
echo "$PID" > "$PIDFILE"

# Poll every 0.1 s until it answers, it dies, or WAIT seconds pass.
i=0
while ! answers; do
  if ! kill -0 "$PID" 2>/dev/null; then
    rm -f "$PIDFILE"
    echo "s3/start: versitygw exited during start; last log lines:" >&2
    tail -n 20 "$LOG" >&2
    exit 1
  fi
  i=$((i + 1))
  if [ "$i" -gt $((WAIT * 10)) ]; then
    kill "$PID" 2>/dev/null || true
    rm -f "$PIDFILE"
    echo "s3/start: versitygw did not answer on 127.0.0.1:$PORT within ${WAIT}s; last log lines:" >&2
    tail -n 20 "$LOG" >&2
    exit 1
  fi
  sleep 0.1
done
echo "endpoint http://127.0.0.1:$PORT"
