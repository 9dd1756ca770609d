# shellcheck shell=bash
# The scale bench's own PostgreSQL and the host PgBouncer in front of it
# (`e2e/cluster scale-db-up` / `scale-db-down`; `down` stops them too).
#
# Separate from the e2e PostgreSQL (its own data dir and port, whose settings stay
# untouched): PostgreSQL's default max_connections=100, so a fan-out wider than that
# shows "too many clients" exactly as in production, and pg_stat_statements, so the
# bench counts the queries. The operator pod reaches it on the bridge IP; the step
# simulator (a host process) goes through PgBouncer in transaction mode on 127.0.0.1.
# Its log ($LOG_DIR/postgres-scale.log) is where the bench counts "too many clients".

SCALE_PG_PORT=${E2E_SCALE_PG_PORT:-55434}
SCALE_BOUNCER_PORT=${E2E_SCALE_BOUNCER_PORT:-55435}
SCALE_PG_MAX_CONNECTIONS=${E2E_SCALE_PG_MAX_CONNECTIONS:-100}
# Server connections PgBouncer opens to PostgreSQL, below max_connections so the
# operator (direct) still gets in.
SCALE_BOUNCER_POOL=${E2E_SCALE_BOUNCER_POOL:-60}
SCALE_STEP_USER=baton_steps
SCALE_DIR=$E2E_STATE/postgres-scale
SCALE_PG_DATA=$SCALE_DIR/data
SCALE_SOCKDIR=$E2E_RUN/postgres-scale

scale_pg_ready() { "$(pg_bindir)/pg_isready" -q -h "$BRIDGE_IP" -p "$SCALE_PG_PORT"; }
scale_bouncer_ready() { "$(pg_bindir)/pg_isready" -q -h 127.0.0.1 -p "$SCALE_BOUNCER_PORT"; }

init_scale_postgres() {
    [[ -s $SCALE_PG_DATA/PG_VERSION ]] && return 0
    local bin
    bin=$(pg_bindir)
    log "initialising the scale bench PostgreSQL in $SCALE_PG_DATA"
    mkdir -p "$SCALE_PG_DATA"
    chown -R postgres:postgres "$SCALE_DIR"
    chmod 700 "$SCALE_PG_DATA"
    as_postgres "$bin/initdb" -D "$SCALE_PG_DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
        -E UTF8 --locale=C.UTF-8 >"$LOG_DIR/postgres-scale-initdb.log" 2>&1 ||
        { log_tail postgres-scale-initdb; die "initdb (scale) failed"; }
    cat >>"$SCALE_PG_DATA/postgresql.conf" <<EOF

# baton scale bench
listen_addresses = '$BRIDGE_IP,127.0.0.1'
port = $SCALE_PG_PORT
unix_socket_directories = '$SCALE_SOCKDIR'
max_connections = $SCALE_PG_MAX_CONNECTIONS
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.max = 5000
pg_stat_statements.track = all
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
    cat >"$SCALE_PG_DATA/pg_hba.conf" <<EOF
# baton scale bench: local socket for the setup, password logins from the pod network and PgBouncer
local all all trust
host  all all $CLUSTER_CIDR scram-sha-256
host  all all 127.0.0.1/32 scram-sha-256
EOF
}

write_bouncer_config() {
    mkdir -p "$SCALE_DIR/pgbouncer"
    # Plain-text secret: PgBouncer uses it for SCRAM towards both sides.
    printf '"%s" "%s"\n' "$PG_USER" "$PG_PASSWORD" "$SCALE_STEP_USER" "$PG_PASSWORD" >"$SCALE_DIR/pgbouncer/userlist.txt"
    cat >"$SCALE_DIR/pgbouncer/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=$SCALE_PG_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $SCALE_BOUNCER_PORT
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $SCALE_DIR/pgbouncer/userlist.txt
pool_mode = transaction
max_client_conn = 5000
default_pool_size = $SCALE_BOUNCER_POOL
max_db_connections = $SCALE_BOUNCER_POOL
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
admin_users = $PG_USER
stats_users = $PG_USER
logfile =
pidfile =
EOF
    chown -R postgres:postgres "$SCALE_DIR/pgbouncer"
    chmod 600 "$SCALE_DIR/pgbouncer/userlist.txt"
}

scale_db_up() {
    is_running postgres || die "the cluster is not up: run e2e/cluster up first"
    local APT_PACKAGES=(pgbouncer:/usr/sbin/pgbouncer)
    install_apt_packages
    mkdir -p "$LOG_DIR" "$SCALE_SOCKDIR"
    chown postgres:postgres "$SCALE_SOCKDIR"
    init_scale_postgres
    start_process postgres-scale setpriv --reuid=postgres --regid=postgres --init-groups \
        env -i PATH=/usr/bin:/bin HOME=/tmp "$(pg_bindir)/postgres" -D "$SCALE_PG_DATA"
    wait_for postgres-scale 60 "the scale PostgreSQL on $BRIDGE_IP:$SCALE_PG_PORT" scale_pg_ready
    as_postgres psql -h "$SCALE_SOCKDIR" -p "$SCALE_PG_PORT" -U postgres -d postgres -qtA -v ON_ERROR_STOP=1 -c "
        DO \$\$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
            CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
          END IF;
          -- the step simulator's role: a member of $PG_USER (its privileges), but its own
          -- userid in pg_stat_statements, so the bench tells step queries from the operator's
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$SCALE_STEP_USER') THEN
            CREATE ROLE $SCALE_STEP_USER LOGIN PASSWORD '$PG_PASSWORD' IN ROLE $PG_USER;
          END IF;
        END \$\$;" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" \
        -c "GRANT pg_read_all_stats TO $PG_USER" >/dev/null ||
        die "could not set up the scale PostgreSQL"
    write_bouncer_config
    # One descriptor per client and server connection: raise the limit before dropping root.
    start_process pgbouncer-scale bash -c "ulimit -n 20000 && exec setpriv --reuid=postgres --regid=postgres \
        --init-groups env -i PATH=/usr/bin:/bin HOME=/tmp /usr/sbin/pgbouncer '$SCALE_DIR/pgbouncer/pgbouncer.ini'"
    wait_for pgbouncer-scale 30 "PgBouncer on 127.0.0.1:$SCALE_BOUNCER_PORT" scale_bouncer_ready
    log "scale db up: PostgreSQL $BRIDGE_IP:$SCALE_PG_PORT (max_connections=$SCALE_PG_MAX_CONNECTIONS), PgBouncer 127.0.0.1:$SCALE_BOUNCER_PORT (transaction, pool $SCALE_BOUNCER_POOL)"
}

scale_db_down() {
    stop_process pgbouncer-scale
    local pid
    pid=$(pid_of postgres-scale)
    [[ -n $pid && -d /proc/$pid ]] && kill -INT "$pid" 2>/dev/null || true
    stop_process postgres-scale
    rm -rf "$SCALE_DIR" "$SCALE_SOCKDIR"
}
