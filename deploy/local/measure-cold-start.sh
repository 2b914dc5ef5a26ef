#!/usr/bin/env bash
# measure-cold-start.sh [RUNS] [N] — times `up.sh N` from nothing running to every node's
# /healthz answering 200, on a fresh state dir each run (installs and builds already cached),
# then `down.sh --wipe`. Prints each run and the median. Uses its own state dir and ports
# (KINDRED_LOCAL_*_PORT may override them) so it does not touch a cluster you already run.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
RUNS=${1:-3}
N=${2:-3}
export KINDRED_CLUSTER_DIR=${KINDRED_CLUSTER_DIR:-$(mktemp -d /tmp/kindred-cold-start.XXXXXX)/cluster}
export KINDRED_LOCAL_NATS_PORT=${KINDRED_LOCAL_NATS_PORT:-14222} KINDRED_LOCAL_CQL_PORT=${KINDRED_LOCAL_CQL_PORT:-19042}
export KINDRED_LOCAL_S3_PORT=${KINDRED_LOCAL_S3_PORT:-19000} KINDRED_LOCAL_HTTP_PORT=${KINDRED_LOCAL_HTTP_PORT:-18080}
export KINDRED_LOCAL_TCP_PORT=${KINDRED_LOCAL_TCP_PORT:-17070} KINDRED_LOCAL_XMPP_PORT=${KINDRED_LOCAL_XMPP_PORT:-15222}
times=()
for r in $(seq 1 "$RUNS"); do
  load=$(cut -d' ' -f1 /proc/loadavg)
  out=$(bash "$HERE/up.sh" "$N" 2>&1) || true
  s=$(echo "$out" | sed -n 's/.*ready in \([0-9.]*\)s.*/\1/p')
  line=$(echo "$out" | tail -3)
  [ -n "$s" ] || { echo "run $r: up.sh failed: $line" >&2; bash "$HERE/down.sh" --wipe >/dev/null 2>&1; exit 1; }
  # CPU time the started processes used up to "ready" (independent of other tenants), and their RSS
  cpu=0
  rss=""
  D=$KINDRED_CLUSTER_DIR
  for f in "$D/cassandra/cassandra.pid" "$D/nats.pid" "$D/s3/versitygw.pid" "$D"/node-*.pid; do
    pid=$(cat "$f")
    ticks=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    cpu=$(awk -v a="$cpu" -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", a + t / hz }')
    rss="$rss $(basename "$f" .pid)=$(awk '/^VmRSS/ { printf "%d", $2 / 1024 }' "/proc/$pid/status")M/$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz }')s"
  done
  stop_started=$(date +%s%N)
  bash "$HERE/down.sh" --wipe 2>/dev/null
  stop_s=$(awk -v a="$stop_started" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
  phases=$(echo "$out" | sed -n 's/^  (\(installs checked.*\))$/\1/p')
  echo "run $r: ready in ${s}s ($phases), down.sh --wipe ${stop_s}s (1-min load average before: $load)"
  echo "       CPU used by the cluster's processes until ready: ${cpu}s; RSS/CPU each:$rss"
  times+=("$s")
  sleep 5
done
printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { printf "median of %d: %.1fs\n", NR, (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
