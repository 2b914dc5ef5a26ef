#!/usr/bin/env sh
# Installs the S3-compatible test/dev server versitygw (Apache-2.0) from the Go module proxy
# into a cache, once. Idempotent: a second run with the binary present does nothing.
#
#   deploy/s3/install.sh          # prints the binary's path on stdout
#   deploy/s3/install.sh --check  # exit 0 if installed (prints the path), 3 if not; installs nothing
#
# Cache: ${KINDRED_CACHE:-$HOME/.cache/kindred}/bin/versitygw (override the whole path with
# KINDRED_VERSITYGW). Needs Go >= 1.25 on PATH (versitygw's go.mod says go 1.25); with an
# older Go the toolchain directive makes `go` download a newer toolchain through the proxy.
# Fails loudly (non-zero exit, message on stderr) when it cannot install.
set -eu

VERSION=v1.7.0
MODULE=github.com/versity/versitygw/cmd/versitygw
CACHE=${KINDRED_CACHE:-$HOME/.cache/kindred}
BIN=${KINDRED_VERSITYGW:-$CACHE/bin/versitygw}
STAMP=$BIN.version

if [ -x "$BIN" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$VERSION" ]; then
  echo "$BIN"
  exit 0
fi
if [ "${1:-}" = "--check" ]; then exit 3; fi

if ! command -v go >/dev/null 2>&1; then
  echo "s3/install: 'go' is not on PATH; install Go >= 1.25 (https://go.dev/dl) to build versitygw $VERSION" >&2
  exit 1
fi

mkdir -p "$(dirname "$BIN")"
# One installer at a time (parallel test files may all find the binary missing).
LOCK=$BIN.lock
i=0
while ! mkdir "$LOCK" 2>/dev/null; do
  i=$((i + 1))
  if [ "$i" -gt 1800 ]; then echo "s3/install: lock $LOCK held for 30 minutes; remove it if stale" >&2; exit 1; fi
  sleep 1
  if [ -x "$BIN" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$VERSION" ]; then echo "$BIN"; exit 0; fi
done
trap 'rmdir "$LOCK" 2>/dev/null || true' EXIT INT TERM

echo "s3/install: building versitygw $VERSION with $(go version) (first run only; a few minutes)" >&2
start=$(date +%s)
TMPBIN=$(mktemp -d "$(dirname "$BIN")/.install.XXXXXX")
# Build into a temp dir and rename, so a half-written binary is never picked up.
if ! GOBIN="$TMPBIN" GOFLAGS="${GOFLAGS:-} -buildvcs=false" CGO_ENABLED=0 go install "$MODULE@$VERSION" >&2; then
  rm -rf "$TMPBIN"
  echo "s3/install: 'go install $MODULE@$VERSION' failed (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))" >&2
  exit 1
fi
mv -f "$TMPBIN/versitygw" "$BIN"
rm -rf "$TMPBIN"
echo "$VERSION" > "$STAMP"
echo "s3/install: installed $BIN in $(( $(date +%s) - start ))s" >&2
echo "$BIN"
