#!/usr/bin/env sh
# Installs the benchmark peers (Debian packages) on first use:
#   bench/peers/install.sh prosody ejabberd
# Installing does not start them: the harness runs each peer from its own config,
# data and log dirs on loopback ports (bench/lib/peers/*.ts). If the package's own
# service was started by the install (no policy-rc.d), it is stopped again so it
# does not hold the default ports on every interface.
set -eu
need=""
for peer in "$@"; do
  case "$peer" in
    prosody) command -v prosodyctl >/dev/null 2>&1 || need="$need prosody lua-dbi-sqlite3 lua-unbound" ;;
    ejabberd) command -v ejabberdctl >/dev/null 2>&1 || [ -x /usr/sbin/ejabberdctl ] || need="$need ejabberd" ;;
    *) echo "install.sh: unknown peer $peer (known: prosody, ejabberd)" >&2; exit 2 ;;
  esac
done
[ -z "$need" ] && exit 0
echo "bench: installing$need (first use only)" >&2
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
  echo "bench: need root or sudo to apt-get install$need" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# ejabberd's postinst starts epmd listening on every interface; note whether one ran before
epmd_before=$(pgrep -x epmd || true)
$SUDO apt-get install -y --no-install-recommends $need >/dev/null 2>&1 || {
  $SUDO apt-get update >/dev/null 2>&1 && $SUDO apt-get install -y --no-install-recommends $need >/dev/null
} || { echo "bench: could not install$need; install by hand: apt-get install$need" >&2; exit 1; }
# Stop the system-wide instances a package may have started (we run our own).
for svc in prosody ejabberd; do
  case "$need" in *"$svc"*) $SUDO service "$svc" stop >/dev/null 2>&1 || true ;; esac
done
# ...and stop an epmd the install started (the harness starts its own on 127.0.0.1 only)
epmd_after=$(pgrep -x epmd || true)
if [ -z "$epmd_before" ] && [ -n "$epmd_after" ]; then kill $epmd_after 2>/dev/null || true; fi
