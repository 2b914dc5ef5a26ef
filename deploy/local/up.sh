#!/usr/bin/env bash
# up.sh [N] — a local Kindred cluster on 127.0.0.1: nats-server with JetStream, a single-node
# Cassandra 5.0, versitygw (S3) and N Kindred nodes in cluster mode (default 3). Installs what
# is missing on first run (apt nats-server, OpenJDK 17 and Maven; Cassandra from Maven Central
# and versitygw from the Go module proxy, both cached in ~/.cache/kindred), builds dist/ if
# needed, waits until every node's /healthz answers 200, then prints the endpoints and how many
# seconds the start took. Idempotent: whatever already runs for this state dir is left alone.
# Stop with deploy/local/down.sh (--wipe also deletes the data).
#
# Everything lives in one state dir, KINDRED_CLUSTER_DIR (default <repo>/.data/local-cluster):
#   cluster.env        ports, node count and credentials, fixed at the first start of the dir
#   nats/              nats-server store (JetStream), nats.pid, nats.log
#   cassandra/         deploy/cassandra/start.sh DIR (data, logs, cassandra.pid)
#   s3/                deploy/s3/start.sh DIR (buckets, versitygw.pid, versitygw.log)
#   node-I/            Kindred node I's data dir; node-I.pid, node-I.log (JSON lines)
#
# Ports (env, read only when the state dir is new; node I adds I-1, XMPP adds 2*(I-1)):
#   KINDRED_LOCAL_NATS_PORT 4222   KINDRED_LOCAL_CQL_PORT 9042 (storage port: CQL+10000)
#   KINDRED_LOCAL_S3_PORT 9000     KINDRED_LOCAL_HTTP_PORT 8080   KINDRED_LOCAL_TCP_PORT 7070
#   KINDRED_LOCAL_XMPP_PORT 5222 (node I's direct-TLS XMPP port is its XMPP port + 1)
# Other env: KINDRED_LOCAL_READY_TIMEOUT (seconds to wait for /healthz, default 180),
#   KINDRED_LOCAL_LOG_LEVEL (nodes' log level, default info), KINDRED_CACHE, and the
#   CASSANDRA_* variables of deploy/cassandra/start.sh (e.g. CASSANDRA_HEAP).
set -euo pipefail

T0=$(date +%s%N)
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
N=${1:-3}
case "$N" in '' | *[!0-9]*) echo "up.sh: N must be a number of nodes, got '$N'" >&2; exit 2 ;; esac
[ "$N" -ge 1 ] && [ "$N" -le 50 ] || { echo "up.sh: N must be between 1 and 50" >&2; exit 2; }
DIR=${KINDRED_CLUSTER_DIR:-$REPO/.data/local-cluster}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

# shellcheck source=deploy/local/lib.sh
. "$HERE/lib.sh"

# One up.sh per state dir at a time (a second one waits, then finds everything running).
LOCK=$DIR/.up.lock
for i in $(seq 1 600); do
  if mkdir "$LOCK" 2>/dev/null; then
    echo $$ >"$LOCK/pid"
    break
  fi
  holder=$(cat "$LOCK/pid" 2>/dev/null || true)
  # a lock whose up.sh is gone (killed) is stale
  if [ -n "$holder" ] && ! kill -0 "$holder" 2>/dev/null; then rm -rf "$LOCK"; continue; fi
  [ "$i" -eq 600 ] && die "another up.sh (pid ${holder:-?}) holds $LOCK for 10 minutes"
  sleep 1
done
trap 'rm -rf "$LOCK"' EXIT

# ── install (first run only; each step is a no-op when cached) ───────────────────────────────
need_apt=""
command -v nats-server >/dev/null 2>&1 || need_apt="$need_apt nats-server"
command -v curl >/dev/null 2>&1 || need_apt="$need_apt curl"
JAVA=$(find_java17 || true)
[ -n "$JAVA" ] || need_apt="$need_apt openjdk-17-jdk-headless"
if [ ! -f "${KINDRED_CACHE:-$HOME/.cache/kindred}/cassandra-5.0/VERSION" ] && ! command -v mvn >/dev/null 2>&1; then
  need_apt="$need_apt maven"
fi
[ -z "$need_apt" ] || apt_install $need_apt
[ -n "$JAVA" ] || JAVA=$(find_java17) || die "no Java 17 found even after installing openjdk-17-jdk-headless"
export CASSANDRA_JAVA=$JAVA
PATH="$(dirname "$JAVA"):$PATH" bash "$REPO/deploy/cassandra/install.sh" >/dev/null
sh "$REPO/deploy/s3/install.sh" >/dev/null
if [ ! -d "$REPO/node_modules" ]; then
  log "installing npm dependencies (npm ci, first run only)"
  (cd "$REPO" && npm ci --no-audit --no-fund >/dev/null)
fi
if [ ! -f "$REPO/dist/cli.js" ]; then
  log "building dist/ (npm run build)"
  (cd "$REPO" && npm run --silent build)
fi

# ── the state dir's settings, fixed at its first start ─────────────────────────────────────────
if [ ! -f "$DIR/cluster.env" ]; then
  cat >"$DIR/cluster.env.new" <<EOF
# written by deploy/local/up.sh at the first start of this state dir; down.sh --wipe removes it
NATS_PORT=${KINDRED_LOCAL_NATS_PORT:-4222}
CQL_PORT=${KINDRED_LOCAL_CQL_PORT:-9042}
S3_PORT=${KINDRED_LOCAL_S3_PORT:-9000}
HTTP_PORT=${KINDRED_LOCAL_HTTP_PORT:-8080}
TCP_PORT=${KINDRED_LOCAL_TCP_PORT:-7070}
XMPP_PORT=${KINDRED_LOCAL_XMPP_PORT:-5222}
TOKEN_SECRET=$(random_hex 32)
S3_ACCESS_KEY=kindred-local
S3_SECRET_KEY=$(random_hex 16)
EOF
  chmod 600 "$DIR/cluster.env.new"
  mv "$DIR/cluster.env.new" "$DIR/cluster.env"
fi
# shellcheck disable=SC1091
. "$DIR/cluster.env"
for v in NATS_PORT CQL_PORT S3_PORT HTTP_PORT TCP_PORT XMPP_PORT; do
  check_port "$v" "${!v}"
done

# Which ports must be free: those of everything not running yet.
busy=""
want_free() { port_open "$2" && busy="$busy $1=$2"; return 0; }
running nats || want_free nats "$NATS_PORT"
cassandra_running || { want_free cassandra "$CQL_PORT"; want_free cassandra-storage "$((CQL_PORT + 10000))"; }
s3_running || want_free s3 "$S3_PORT"
for i in $(seq 1 "$N"); do
  if ! running "node-$i"; then
    want_free "node-$i-http" "$(node_port HTTP "$i")"
    want_free "node-$i-tcp" "$(node_port TCP "$i")"
    want_free "node-$i-xmpp" "$(node_port XMPP "$i")"
    want_free "node-$i-xmpp-tls" "$(node_port XMPP_TLS "$i")"
  fi
done
[ -z "$busy" ] || die "ports already in use on 127.0.0.1:$busy (another cluster or server?). Pick others with KINDRED_LOCAL_*_PORT and a new KINDRED_CLUSTER_DIR" 3

# ── services: Cassandra (slowest) in the background while NATS and S3 start ──────────────────
cass_pid=""
if ! cassandra_running; then
  log "starting Cassandra on 127.0.0.1:$CQL_PORT"
  CASSANDRA_STORAGE_PORT=$((CQL_PORT + 10000)) bash "$REPO/deploy/cassandra/start.sh" "$DIR/cassandra" "$CQL_PORT" \
    >"$DIR/cassandra.start.log" 2>&1 &
  cass_pid=$!
fi

if ! running nats; then
  log "starting nats-server (JetStream) on 127.0.0.1:$NATS_PORT"
  mkdir -p "$DIR/nats"
  setsid nohup nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$DIR/nats" -n "kindred-local-nats" \
    </dev/null >"$DIR/nats.log" 2>&1 &
  echo $! >"$DIR/nats.pid"
  wait_until 20 "nats-server on port $NATS_PORT" nats_ready || { tail -n 20 "$DIR/nats.log" >&2; die "nats-server did not start"; }
fi

if ! s3_running; then
  log "starting versitygw (S3) on 127.0.0.1:$S3_PORT"
  # versitygw stays in this script's session unless detached: give it its own.
  KINDRED_S3_ACCESS_KEY=$S3_ACCESS_KEY KINDRED_S3_SECRET_KEY=$S3_SECRET_KEY \
    setsid sh "$REPO/deploy/s3/start.sh" "$DIR/s3" "$S3_PORT" >/dev/null </dev/null ||
    die "versitygw did not start (see $DIR/s3/versitygw.log)"
fi

if [ -n "$cass_pid" ]; then
  wait "$cass_pid" || { tail -n 30 "$DIR/cassandra.start.log" >&2; die "Cassandra did not start (logs in $DIR/cassandra/logs)"; }
fi

T_SERVICES=$(date +%s%N)

# ── Kindred nodes, all at once (the schema migration is idempotent and race-safe) ────────────
for i in $(seq 1 "$N"); do
  if running "node-$i"; then continue; fi
  mkdir -p "$DIR/node-$i"
  log "starting Kindred node-$i on 127.0.0.1:$(node_port HTTP "$i")"
  (
    cd "$REPO"
    # Secrets through the environment, so they do not show up in ps.
    KINDRED_TOKEN_SECRET=$TOKEN_SECRET KINDRED_S3_ACCESS_KEY=$S3_ACCESS_KEY KINDRED_S3_SECRET_KEY=$S3_SECRET_KEY \
      KINDRED_LOG_LEVEL=${KINDRED_LOCAL_LOG_LEVEL:-info} \
      setsid nohup node dist/cli.js start --cluster \
      --node-id "node-$i" --data-dir "$DIR/node-$i" --host 127.0.0.1 \
      --http-port "$(node_port HTTP "$i")" --tcp-port "$(node_port TCP "$i")" \
      --xmpp-port "$(node_port XMPP "$i")" --xmpp-tls-port "$(node_port XMPP_TLS "$i")" \
      --nats-urls "nats://127.0.0.1:$NATS_PORT" \
      --cassandra-contact-points "127.0.0.1:$CQL_PORT" --cassandra-dc datacenter1 --cassandra-keyspace kindred \
      --s3-endpoint 127.0.0.1 --s3-port "$S3_PORT" --s3-ssl=false --s3-bucket kindred --s3-region us-east-1 \
      </dev/null >"$DIR/node-$i.log" 2>&1 &
    echo $! >"$DIR/node-$i.pid"
  )
done

TIMEOUT=${KINDRED_LOCAL_READY_TIMEOUT:-180}
deadline=$(($(date +%s) + TIMEOUT))
for i in $(seq 1 "$N"); do
  until node_ready "$i"; do
    if ! running "node-$i"; then
      tail -n 30 "$DIR/node-$i.log" >&2
      die "node-$i exited during start (log: $DIR/node-$i.log)"
    fi
    [ "$(date +%s)" -lt "$deadline" ] || { tail -n 30 "$DIR/node-$i.log" >&2; die "node-$i not ready after ${TIMEOUT}s"; }
    sleep 0.2
  done
done
T1=$(date +%s%N)
ELAPSED=$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
PHASES=$(awk -v a="$T0" -v m="$T_SERVICES" -v b="$T1" 'BEGIN { printf "installs checked and NATS, Cassandra, S3 up after %.1fs, nodes ready %.1fs later", (m - a) / 1e9, (b - m) / 1e9 }')

extra=""
for f in "$DIR"/node-*.pid; do
  [ -f "$f" ] || continue
  i=${f##*/node-}
  i=${i%.pid}
  if [ "$i" -gt "$N" ] && running "node-$i"; then extra="$extra $i"; fi
done
cat <<EOF
kindred local cluster ready in ${ELAPSED}s ($N nodes, state in $DIR)
  ($PHASES)
  NATS        nats://127.0.0.1:$NATS_PORT (JetStream)
  Cassandra   127.0.0.1:$CQL_PORT (keyspace kindred)
  S3          http://127.0.0.1:$S3_PORT (versitygw, bucket kindred; keys in $DIR/cluster.env)
EOF
for i in $(seq 1 "$N"); do
  echo "  node-$i      http://127.0.0.1:$(node_port HTTP "$i")/v1  ws://127.0.0.1:$(node_port HTTP "$i")/ws  tcp 127.0.0.1:$(node_port TCP "$i")  xmpp 127.0.0.1:$(node_port XMPP "$i")/$(node_port XMPP_TLS "$i")  log $DIR/node-$i.log"
done
[ -z "$extra" ] || echo "  (also running, from an earlier up.sh with more nodes: node$extra)"
echo "stop with: deploy/local/down.sh$([ "$DIR" = "$REPO/.data/local-cluster" ] || echo " (KINDRED_CLUSTER_DIR=$DIR)")"
