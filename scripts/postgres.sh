#!/usr/bin/env bash
# A private PostgreSQL server for the tests: `postgres.sh start` installs the Debian
# packages if needed, creates a cluster under $BATON_PG_DIR, starts it on
# 127.0.0.1:$BATON_PG_PORT and prints the test database URL; `stop` stops it.
# BATON_PG_PORT, BATON_PG_DIR, BATON_PG_DB and BATON_PG_OPTS (more server options) make a
# second server (bench/peer's). As root the server runs as the `postgres` user
# (PostgreSQL refuses to run as root).
set -euo pipefail

PORT="${BATON_PG_PORT:-55432}"
DIR="${BATON_PG_DIR:-/tmp/baton-pg-$(id -u)}"
DB="${BATON_PG_DB:-baton_test}"
OPTS="${BATON_PG_OPTS:-}"  # more server options, e.g. "-c shared_preload_libraries=..."
URL="postgresql+psycopg://baton@127.0.0.1:${PORT}/${DB}"

say() { echo "postgres.sh: $*" >&2; }

pg_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$d" ] && [ -x "$d/initdb" ] && echo "$d"
}

install() {
  if [ -n "$(pg_bin)" ]; then return; fi
  if [ "$(id -u)" != 0 ]; then
    say "PostgreSQL server binaries not found; install them with: sudo apt-get install -y postgresql"
    exit 1
  fi
  say "installing PostgreSQL from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
}

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  install
  local bin; bin=$(pg_bin)
  if [ "$(id -u)" = 0 ]; then mkdir -p "$DIR" && chown postgres: "$DIR"; else mkdir -p "$DIR"; fi
  if [ ! -f "$DIR/data/PG_VERSION" ]; then
    as_owner "$bin/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 >"$DIR/initdb.log" 2>&1 \
      || { say "initdb failed:"; tail -n 20 "$DIR/initdb.log" >&2; exit 1; }
  fi
  if ! as_owner "$bin/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
    as_owner "$bin/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
      -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off $OPTS" start >&2 \
      || { say "server did not start:"; tail -n 20 "$DIR/server.log" >&2; exit 1; }
  fi
  local psql=("$bin/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -qtA)
  if [ "$("${psql[@]}" -c "select 1 from pg_roles where rolname='baton'")" != 1 ]; then
    "${psql[@]}" -c "create role baton login superuser" >&2
  fi
  if [ "$("${psql[@]}" -c "select 1 from pg_database where datname='$DB'")" != 1 ]; then
    "${psql[@]}" -c "create database \"$DB\" owner baton" >&2
  fi
  echo "$URL"
}

stop() {
  local bin; bin=$(pg_bin) || exit 0
  [ -f "$DIR/data/PG_VERSION" ] || exit 0
  as_owner "$bin/pg_ctl" -D "$DIR/data" -m fast stop >&2 || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) echo "$URL" ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
