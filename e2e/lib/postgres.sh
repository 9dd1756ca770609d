# shellcheck shell=bash
# PostgreSQL on the host for the pods: a private cluster (initdb) run as the
# `postgres` user, listening on the bridge gateway so pods reach it, with a
# role the tests use to create one database per run.

PG_DATA=$E2E_STATE/postgres/data
PG_SOCKDIR=$E2E_RUN/postgres
PG_USER=baton
PG_PASSWORD=baton-e2e

as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups env -i PATH=/usr/bin:/bin HOME=/tmp "$@"; }

pg_ready() { "$(pg_bindir)/pg_isready" -q -h "$BRIDGE_IP" -p "$PG_PORT"; }

init_postgres() {
    [[ -s $PG_DATA/PG_VERSION ]] && return 0
    local bin
    bin=$(pg_bindir)
    log "initialising PostgreSQL ($bin) in $PG_DATA"
    mkdir -p "$PG_DATA"
    chown -R postgres:postgres "$E2E_STATE/postgres"
    chmod 700 "$PG_DATA"
    as_postgres "$bin/initdb" -D "$PG_DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 >"$LOG_DIR/postgres-initdb.log" 2>&1 ||
        { log_tail postgres-initdb; die "initdb failed"; }
    cat >>"$PG_DATA/postgresql.conf" <<EOF

# baton e2e
listen_addresses = '$BRIDGE_IP'
port = $PG_PORT
unix_socket_directories = '$PG_SOCKDIR'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
    cat >"$PG_DATA/pg_hba.conf" <<EOF
# baton e2e: local socket for the setup, password logins from the pod network
local all all trust
host  all all $CLUSTER_CIDR scram-sha-256
host  all all 127.0.0.1/32 scram-sha-256
EOF
}

start_postgres() {
    mkdir -p "$LOG_DIR" "$PG_SOCKDIR"
    chown postgres:postgres "$PG_SOCKDIR"
    init_postgres
    if ! is_running postgres && ss -ltn "( sport = :$PG_PORT )" | grep "$BRIDGE_IP:$PG_PORT\|\*:$PG_PORT\|0.0.0.0:$PG_PORT" >/dev/null; then
        die "port $BRIDGE_IP:$PG_PORT is taken by another server (ss -ltnp '( sport = :$PG_PORT )'); stop it or set E2E_PG_PORT"
    fi
    start_process postgres setpriv --reuid=postgres --regid=postgres --init-groups \
        env -i PATH=/usr/bin:/bin HOME=/tmp "$(pg_bindir)/postgres" -D "$PG_DATA"
    wait_for postgres 60 "PostgreSQL on $BRIDGE_IP:$PG_PORT" pg_ready
    as_postgres psql -h "$PG_SOCKDIR" -p "$PG_PORT" -U postgres -d postgres -qtA -v ON_ERROR_STOP=1 -c "
        DO \$\$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
            CREATE ROLE $PG_USER LOGIN CREATEDB CREATEROLE PASSWORD '$PG_PASSWORD';
          END IF;
          -- CREATEROLE: the chart's per-namespace database roles (values tenants)
          ALTER ROLE $PG_USER CREATEROLE;
        END \$\$;" >/dev/null || die "could not create the $PG_USER role"
}

stop_postgres() {
    local pid
    pid=$(pid_of postgres)
    # SIGINT is PostgreSQL's "fast" shutdown.
    [[ -n $pid && -d /proc/$pid ]] && kill -INT "$pid" 2>/dev/null || true
    stop_process postgres
}
