#!/usr/bin/env sh
# Installs, on first run, the system packages the test suite drives for real:
# slixmpp (a Python XMPP client, for interop tests), openssl (test certificates)
# and nats-server (the cluster bus tests start a real broker on a loopback port).
# Fails loudly when it cannot: tests are never skipped for a missing dependency.
set -eu

need=""
/usr/bin/python3 -c 'import slixmpp' 2>/dev/null || need="$need python3-slixmpp"
command -v openssl >/dev/null 2>&1 || need="$need openssl"
command -v nats-server >/dev/null 2>&1 || need="$need nats-server"
# the web front end's browser tests drive Debian's Chromium with playwright-core
[ -x /usr/bin/chromium ] || need="$need chromium"
[ -z "$need" ] && exit 0

echo "test-deps: installing$need (first run only)"
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
  echo "test-deps: need root or sudo to apt-get install$need" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y --no-install-recommends $need >/dev/null 2>&1 || {
  $SUDO apt-get update >/dev/null 2>&1 && $SUDO apt-get install -y --no-install-recommends $need >/dev/null
} || { echo "test-deps: could not install$need; install it by hand (apt-get install$need)" >&2; exit 1; }
/usr/bin/python3 -c 'import slixmpp' || { echo "test-deps: slixmpp still not importable by /usr/bin/python3" >&2; exit 1; }
command -v nats-server >/dev/null 2>&1 || { echo "test-deps: nats-server still not on PATH after installing it" >&2; exit 1; }
[ -x /usr/bin/chromium ] || { echo "test-deps: /usr/bin/chromium still missing after installing chromium" >&2; exit 1; }
