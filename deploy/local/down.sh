#!/usr/bin/env bash
# down.sh [--wipe] — stops the local cluster that deploy/local/up.sh started in
# KINDRED_CLUSTER_DIR (default <repo>/.data/local-cluster): the Kindred nodes first (SIGTERM:
# they leave the cluster, hand their shards over and flush), then versitygw, nats-server and
# Cassandra (SIGTERM: it drains). Only processes recorded in the state dir's pid files, and
# whose command line names that dir, are signalled. --wipe then deletes the state dir (data,
# logs, ports and secrets), and kills Cassandra at once instead of draining it.
# Succeeds when nothing is running.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
WIPE=""
for arg in "$@"; do
  case "$arg" in
    --wipe) WIPE=1 ;;
    *) echo "usage: down.sh [--wipe]" >&2; exit 2 ;;
  esac
done
DIR=${KINDRED_CLUSTER_DIR:-$REPO/.data/local-cluster}
if [ ! -d "$DIR" ]; then
  echo "local cluster: nothing to stop ($DIR does not exist)" >&2
  exit 0
fi
DIR=$(cd "$DIR" && pwd)
# shellcheck source=deploy/local/lib.sh
. "$HERE/lib.sh"

# Kindred nodes, in parallel: each drains its connections and hands its shards over.
stoppers=()
for f in "$DIR"/node-*.pid; do
  [ -f "$f" ] || continue
  name=$(basename "$f" .pid)
  stop_pid "$name" "$(pid_of "$f" || true)" "--data-dir $DIR/$name " "${KINDRED_LOCAL_STOP_TIMEOUT:-20}" &
  stoppers+=($!)
done
for p in "${stoppers[@]}"; do wait "$p" || true; done
rm -f "$DIR"/node-*.pid

# versitygw and nats-server take no time to stop; Cassandra drains unless the data goes anyway.
KINDRED_S3_STOP_TIMEOUT=10 sh "$REPO/deploy/s3/stop.sh" "$DIR/s3" || true
stop_pid nats "$(pid_of "$DIR/nats.pid" || true)" "$DIR/nats" 10
rm -f "$DIR/nats.pid"
if [ -n "$WIPE" ]; then
  bash "$REPO/deploy/cassandra/stop.sh" "$DIR/cassandra" --now
else
  bash "$REPO/deploy/cassandra/stop.sh" "$DIR/cassandra"
fi

if [ -n "$WIPE" ]; then
  rm -rf "$DIR"
  log "wiped $DIR"
else
  log "stopped; data kept in $DIR (up.sh restarts on it, down.sh --wipe deletes it)"
fi
