#!/bin/sh
# Builds kindred-tls-front (native/tls-front/, Go standard library only: no network needed)
# into dist/bin/. Without `go` on PATH it says so and builds nothing: Kindred then terminates
# TLS with node:tls (tls.terminator "auto"), or refuses to start with tls.terminator "front".
set -e
root=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v go >/dev/null 2>&1; then
  echo "build-tls-front: go is not on PATH; skipping kindred-tls-front (node:tls will terminate TLS)" >&2
  exit 0
fi
mkdir -p "$root/dist/bin"
cd "$root/native/tls-front"
# GOTOOLCHAIN=local: never download a toolchain (go.mod asks for 1.22, any newer local Go builds it)
GOTOOLCHAIN=local CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$root/dist/bin/kindred-tls-front.tmp" .
mv "$root/dist/bin/kindred-tls-front.tmp" "$root/dist/bin/kindred-tls-front"
