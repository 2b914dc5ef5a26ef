#!/usr/bin/env bash
# Re-runs the side-by-side figures in bench/RESULTS.md (Kindred vs Prosody vs ejabberd over
# XMPP with STARTTLS) RUNS times (default 3), interleaved, then prints medians:
#   - chat step-load: the highest message rate with p99 delivery latency < 100 ms
#   - connections: 1000 idle sessions, connect+login rate and server RSS per session
#   bench/run-comparison.sh              # builds a snapshot of src/ into bench/.build first
#   ENTRY=dist/cli.js RUNS=2 bench/run-comparison.sh
set -uo pipefail
cd "$(dirname "$0")/.."
ENTRY=${ENTRY:-bench/.build/cli.js}
RUNS=${RUNS:-3}
PAIRS=${PAIRS:-200}
if [ "$ENTRY" = bench/.build/cli.js ] && [ -z "${NO_BUILD:-}" ]; then
  npx tsc -p tsconfig.json --outDir bench/.build || exit 1
  { git rev-parse HEAD; git status --porcelain -- src; } > bench/.build/BUILD_INFO.txt
fi
since=$(date +%s)
for i in $(seq 1 "$RUNS"); do
  npm run --silent bench -- chat --step-load --target kindred,prosody,ejabberd --protocol xmpp-tcp --pairs "$PAIRS" \
    --start-rate 50 --server-entry "$ENTRY" || echo "chat step-load run $i exited with $?"
  npm run --silent bench -- connections --target kindred,prosody,ejabberd --protocol xmpp-tcp --connections 1000 \
    --server-entry "$ENTRY" || echo "connections run $i exited with $?"
done
node --import tsx bench/summarize.ts --since "$since"
