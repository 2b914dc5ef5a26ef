# Helpers shared by deploy/local/up.sh and down.sh (sourced, not run). Expect DIR (the state
# dir, absolute) and, for the node helpers, the ports of cluster.env.

die() { echo "local cluster: $1" >&2; exit "${2:-1}"; }
log() { echo "local cluster: $*" >&2; }

random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

check_port() {
  case "$2" in '' | *[!0-9]*) die "$1 must be a port number, got '$2'" 2 ;; esac
  [ "$2" -ge 1 ] && [ "$2" -le 65535 ] || die "$1 out of range: $2" 2
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# node_port KIND I: node I's HTTP, TCP, XMPP or XMPP_TLS port.
node_port() {
  case "$1" in
    HTTP) echo $((HTTP_PORT + $2 - 1)) ;;
    TCP) echo $((TCP_PORT + $2 - 1)) ;;
    XMPP) echo $((XMPP_PORT + 2 * ($2 - 1))) ;;
    XMPP_TLS) echo $((XMPP_PORT + 2 * ($2 - 1) + 1)) ;;
  esac
}

# pid_is_ours PID PATTERN: the process is alive and its command line mentions PATTERN (a path
# inside this state dir), so a recycled pid is never taken for ours.
pid_is_ours() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"
}
pid_of() { [ -f "$1" ] && tr -dc '0-9' <"$1"; }

# running NAME: nats or node-I, started by up.sh from $DIR/NAME.pid.
running() {
  local pattern
  case "$1" in
    nats) pattern="$DIR/nats" ;;
    *) pattern="--data-dir $DIR/$1 " ;; # the space: node-1 must not match node-10
  esac
  pid_is_ours "$(pid_of "$DIR/$1.pid")" "$pattern"
}
cassandra_running() { pid_is_ours "$(pid_of "$DIR/cassandra/cassandra.pid")" "$DIR/cassandra/data"; }
s3_running() { pid_is_ours "$(pid_of "$DIR/s3/versitygw.pid")" "$DIR/s3"; }

nats_ready() { grep -q 'Server is ready' "$DIR/nats.log" 2>/dev/null && port_open "$NATS_PORT"; }
node_ready() { [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$(node_port HTTP "$1")/healthz" 2>/dev/null)" = 200 ]; }

# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 0.1 s.
wait_until() {
  local end=$(($(date +%s) + $1)) what=$2
  shift 2
  until "$@"; do
    [ "$(date +%s)" -lt "$end" ] || { log "$what: not ready after the timeout"; return 1; }
    sleep 0.1
  done
}

# A Java 17 binary: CASSANDRA_JAVA, java on PATH, or Debian's OpenJDK 17.
find_java17() {
  local j
  for j in "${CASSANDRA_JAVA:-}" java /usr/lib/jvm/java-17-openjdk-*/bin/java; do
    [ -n "$j" ] && command -v "$j" >/dev/null 2>&1 || continue
    if [ "$("$j" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')" = 17 ]; then
      command -v "$j"
      return 0
    fi
  done
  return 1
}

# apt_install PKG...: Debian packages, as root or through sudo -n; fails loudly.
apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "need root or sudo to apt-get install $*"
    sudo="sudo -n"
  fi
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install $* by hand"
  log "installing $* with apt-get (first run only)"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1 ||
    { $sudo apt-get update >/dev/null 2>&1 && $sudo apt-get install -y --no-install-recommends "$@" >/dev/null; } ||
    die "could not install $* (apt-get install $*)"
}

# stop_pid NAME PID PATTERN SECONDS: SIGTERM, then SIGKILL after SECONDS, if it is ours.
stop_pid() {
  local name=$1 pid=$2 pattern=$3 secs=$4 end
  pid_is_ours "$pid" "$pattern" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  end=$(($(date +%s) + secs))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$(date +%s)" -ge "$end" ]; then
      log "$name (pid $pid) still running ${secs}s after SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
      break
    fi
    sleep 0.1
  done
  log "stopped $name (pid $pid)"
}
