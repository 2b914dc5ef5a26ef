#!/usr/bin/env bash
# start.sh DIR PORT — starts a single-node Cassandra 5.0 on 127.0.0.1 with its CQL native port at
# PORT, keeping everything (config, data, commitlog, logs, pid) under DIR. Waits until CQL accepts
# connections, then prints the server's pid on stdout and exits; the server keeps running
# (stop it with stop.sh DIR). Installs Cassandra first if needed (install.sh, cached).
#
# Env (all optional):
#   CASSANDRA_STORAGE_PORT   internode/gossip port (default PORT+10000, or PORT-10000 above 55535);
#                            two nodes on one machine need different PORTs and storage ports
#   CASSANDRA_HEAP           heap size for -Xms/-Xmx (default 1G)
#   CASSANDRA_COMMITLOG_WINDOW  group-commit window (default 5ms)
#   CASSANDRA_CLUSTER_NAME   (default kindred)
#   CASSANDRA_START_TIMEOUT  seconds to wait for CQL (default 180)
#   CASSANDRA_JAVA           java binary (default: java on PATH; must be Java 17)
#   CASSANDRA_JVM_EXTRA      more JVM options, space-separated (tests add -Dcassandra.unsafesystem=true:
#                            schema changes then skip flushing the system keyspace; never in production)
#   KINDRED_CACHE            where install.sh keeps the jars (default ~/.cache/kindred)
set -euo pipefail

die() { echo "start.sh: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: start.sh DIR PORT"
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
DIR=$(cd "$1" && pwd)
PORT=$2
case "$PORT" in '' | *[!0-9]*) die "PORT must be a number" ;; esac
[ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] || die "PORT out of range"
if [ "$PORT" -le 55535 ]; then DEFAULT_STORAGE=$((PORT + 10000)); else DEFAULT_STORAGE=$((PORT - 10000)); fi
STORAGE_PORT=${CASSANDRA_STORAGE_PORT:-$DEFAULT_STORAGE}
HEAP=${CASSANDRA_HEAP:-1G}
WINDOW=${CASSANDRA_COMMITLOG_WINDOW:-5ms}
CLUSTER=${CASSANDRA_CLUSTER_NAME:-kindred}
TIMEOUT=${CASSANDRA_START_TIMEOUT:-180}
JAVA=${CASSANDRA_JAVA:-java}

command -v "$JAVA" >/dev/null 2>&1 || die "java not found: install OpenJDK 17 (apt-get install openjdk-17-jdk-headless)"
JAVA_MAJOR=$("$JAVA" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
[ "$JAVA_MAJOR" = "17" ] || die "$JAVA is Java ${JAVA_MAJOR:-unknown}; Cassandra 5.0 needs Java 17 (set CASSANDRA_JAVA)"

if [ -f "$DIR/cassandra.pid" ] && kill -0 "$(cat "$DIR/cassandra.pid")" 2>/dev/null; then
  die "a Cassandra (pid $(cat "$DIR/cassandra.pid")) is already running on $DIR"
fi
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$PORT" "$STORAGE_PORT"; do
  port_open "$p" && die "port $p on 127.0.0.1 is already in use"
done

CASSANDRA_HOME=$(bash "$HERE/install.sh")
[ -f "$CASSANDRA_HOME/VERSION" ] || die "install.sh did not produce an install"

mkdir -p "$DIR/conf/triggers" "$DIR/data" "$DIR/logs"
sed -e "s|@CLUSTER_NAME@|$CLUSTER|" -e "s|@NATIVE_PORT@|$PORT|" -e "s|@STORAGE_PORT@|$STORAGE_PORT|g" \
  -e "s|@DATA_DIR@|$DIR/data|g" -e "s|@COMMITLOG_WINDOW@|$WINDOW|" \
  "$HERE/cassandra.yaml" >"$DIR/conf/cassandra.yaml"
cp "$HERE/logback.xml" "$DIR/conf/logback.xml"

JVM_OPTS=(
  "-Xms$HEAP" "-Xmx$HEAP" -Xss256k
  -XX:+UseG1GC -XX:MaxGCPauseMillis=300 -XX:+ParallelRefProcEnabled
  -XX:+HeapDumpOnOutOfMemoryError "-XX:HeapDumpPath=$DIR/logs" -XX:+ExitOnOutOfMemoryError
  -XX:-UsePerfData
  -Djava.net.preferIPv4Stack=true
  -Djdk.attach.allowAttachSelf=true
  -Dio.netty.tryReflectionSetAccessible=true
  # JDK 17: Cassandra's conf/jvm17-server.options
  --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
  --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
  --add-exports java.management/com.sun.jmx.remote.security=ALL-UNNAMED
  --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
  --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
  --add-exports java.sql/java.sql=ALL-UNNAMED
  --add-exports java.base/java.lang.ref=ALL-UNNAMED
  --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
  --add-opens java.base/java.lang.module=ALL-UNNAMED
  --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
  --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
  --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
  --add-opens java.base/jdk.internal.math=ALL-UNNAMED
  --add-opens java.base/jdk.internal.module=ALL-UNNAMED
  --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
  --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
  --add-opens java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens java.base/java.io=ALL-UNNAMED
  --add-opens java.base/java.lang.reflect=ALL-UNNAMED
  --add-opens java.base/java.lang=ALL-UNNAMED
  --add-opens java.base/java.util=ALL-UNNAMED
  --add-opens java.base/java.nio=ALL-UNNAMED
  # Cassandra's own settings
  "-Dcassandra.config=file://$DIR/conf/cassandra.yaml"
  "-Dlogback.configurationFile=$DIR/conf/logback.xml"
  "-Dcassandra.storagedir=$DIR/data"
  "-Dcassandra.logdir=$DIR/logs"
  "-Dcassandra.triggers_dir=$DIR/conf/triggers"
  -Dcassandra-foreground=yes
  # Fast single-node start: no gossip settling, a fixed token, no superuser setup delay.
  -Dcassandra.skip_wait_for_gossip_to_settle=0
  -Dcassandra.initial_token=0
  -Dcassandra.superuser_setup_delay_ms=0
  -Dcassandra.ring_delay_ms=1000
)
# shellcheck disable=SC2206
[ -n "${CASSANDRA_JVM_EXTRA:-}" ] && JVM_OPTS+=($CASSANDRA_JVM_EXTRA)
JAMM=$(ls "$CASSANDRA_HOME"/lib/jamm-*.jar 2>/dev/null | head -1 || true)
[ -n "$JAMM" ] && JVM_OPTS+=("-javaagent:$JAMM")

# Own session (setsid) so the server outlives this script and its caller's process group.
setsid nohup "$JAVA" "${JVM_OPTS[@]}" -cp "$CASSANDRA_HOME/lib/*" org.apache.cassandra.service.CassandraDaemon \
  </dev/null >"$DIR/logs/stdout.log" 2>&1 &
PID=$!
echo "$PID" >"$DIR/cassandra.pid"
echo "$PORT $STORAGE_PORT" >"$DIR/ports"

started=$(date +%s)
until port_open "$PORT"; do
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "start.sh: Cassandra exited during startup; last log lines:" >&2
    tail -n 30 "$DIR/logs/stdout.log" >&2 || true
    rm -f "$DIR/cassandra.pid"
    exit 1
  fi
  if [ $(($(date +%s) - started)) -ge "$TIMEOUT" ]; then
    echo "start.sh: CQL port $PORT not open after ${TIMEOUT}s; stopping pid $PID. Last log lines:" >&2
    tail -n 30 "$DIR/logs/system.log" >&2 || true
    kill -KILL "$PID" 2>/dev/null || true
    rm -f "$DIR/cassandra.pid"
    exit 1
  fi
  sleep 0.25
done
echo "start.sh: Cassandra $(cat "$CASSANDRA_HOME/VERSION") (pid $PID) accepts CQL on 127.0.0.1:$PORT after $(($(date +%s) - started))s (storage port $STORAGE_PORT, data in $DIR)" >&2
echo "$PID"
