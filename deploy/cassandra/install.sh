#!/usr/bin/env bash
# Installs Apache Cassandra 5.0 (the server, not a client) from Maven Central into a cache dir:
#   ${KINDRED_CACHE:-$HOME/.cache/kindred}/cassandra-5.0/lib/*.jar   (cassandra-all and its runtime deps)
#   ${KINDRED_CACHE:-$HOME/.cache/kindred}/cassandra-5.0/VERSION
# Idempotent: a complete install (marked by VERSION) is reused; an interrupted one is redone.
# Needs OpenJDK 17 and Maven 3 (Debian: openjdk-17-jdk-headless maven). Nothing is downloaded
# from outside Maven Central. Prints the install dir on success.
#
# Env: KINDRED_CACHE (cache root), CASSANDRA_VERSIONS (candidates, newest first),
#      CASSANDRA_HOME_DIR (overrides the install dir), MAVEN_REPO (local repo, default ~/.m2/repository).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${KINDRED_CACHE:-$HOME/.cache/kindred}
DEST=${CASSANDRA_HOME_DIR:-$CACHE/cassandra-5.0}
VERSIONS=${CASSANDRA_VERSIONS:-"5.0.8 5.0.7 5.0.6 5.0.5 5.0.4"}

die() { echo "install.sh: $*" >&2; exit 1; }

if [ -f "$DEST/VERSION" ] && [ -n "$(ls "$DEST"/lib/cassandra-all-*.jar 2>/dev/null)" ]; then
  echo "$DEST"
  exit 0
fi

command -v java >/dev/null 2>&1 || die "java not found: install OpenJDK 17 (apt-get install openjdk-17-jdk-headless)"
command -v mvn >/dev/null 2>&1 || die "mvn not found: install Maven (apt-get install maven)"
JAVA_MAJOR=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
[ "$JAVA_MAJOR" = "17" ] || [ -n "${CASSANDRA_JAVA:-}" ] ||
  die "java on PATH is version ${JAVA_MAJOR:-unknown}; Cassandra 5.0 needs 17 (set CASSANDRA_JAVA to a Java 17 binary to override)"

mkdir -p "$CACHE"
WORK=$(mktemp -d "$CACHE/.cassandra-install.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

MVN_ARGS=(-q -B -f "$WORK/pom.xml")
[ -n "${MAVEN_REPO:-}" ] && MVN_ARGS+=("-Dmaven.repo.local=$MAVEN_REPO")

installed=
for v in $VERSIONS; do
  sed "s/@CASSANDRA_VERSION@/$v/" "$HERE/pom.xml" >"$WORK/pom.xml"
  rm -rf "$WORK/lib"
  echo "install.sh: resolving org.apache.cassandra:cassandra-all:$v and its dependencies from Maven Central" >&2
  if mvn "${MVN_ARGS[@]}" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$WORK/lib" >"$WORK/mvn.log" 2>&1; then
    installed=$v
    break
  fi
  echo "install.sh: $v did not resolve:" >&2
  grep -E '^\[ERROR\]' "$WORK/mvn.log" | head -5 >&2 || tail -5 "$WORK/mvn.log" >&2
done
[ -n "$installed" ] || die "no Cassandra version of [$VERSIONS] resolved from Maven Central"
ls "$WORK"/lib/cassandra-all-*.jar >/dev/null 2>&1 || die "cassandra-all jar missing after resolution"

rm -rf "$DEST.new"
mkdir -p "$DEST.new"
mv "$WORK/lib" "$DEST.new/lib"
echo "$installed" >"$DEST.new/VERSION"
rm -rf "$DEST"
mv "$DEST.new" "$DEST"
echo "install.sh: Cassandra $installed installed in $DEST ($(ls "$DEST/lib" | wc -l) jars)" >&2
echo "$DEST"
