#!/usr/bin/env bash
# Re-runs every figure in bench/RESULTS.md three times (interleaved, so slow phases
# of a shared machine spread over all figures), then prints medians.
#   bench/run-figures.sh            # builds a snapshot of src/ into bench/.build first
#   ENTRY=dist/cli.js bench/run-figures.sh
set -uo pipefail
cd "$(dirname "$0")/.."
ENTRY=${ENTRY:-bench/.build/cli.js}
if [ "$ENTRY" = bench/.build/cli.js ]; then
  npx tsc -p tsconfig.json --outDir bench/.build || exit 1
  { git rev-parse HEAD; git status --porcelain -- src; } > bench/.build/BUILD_INFO.txt
fi
since=$(date +%s)
for i in 1 2 3; do
  for rate in 1000 2000 3000 5000 10000; do
    npm run --silent bench -- chat-native --pairs 1000 --rate "$rate" --duration 20 --server-entry "$ENTRY" || echo "chat $rate exited with $?"
  done
  npm run --silent bench -- swipes --users 1000 --concurrency 128 --duration 20 --server-entry "$ENTRY" || echo "swipes exited with $?"
  npm run --silent bench -- idle --connections 10000 --server-entry "$ENTRY" || echo "idle exited with $?"
done
node --import tsx bench/summarize.ts --since "$since"
