# shellcheck shell=bash
# The local provider: a single-node cluster from parts on this machine.

COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy postgres)

write_env_file() {
    cat >"$ENV_FILE" <<EOF
# Written by e2e/cluster up ($(date -u +%FT%TZ)); read by e2e/conftest.py.
E2E_PROVIDER=local
E2E_KUBECONFIG=$KUBECONFIG_PATH
E2E_KUBECTL=$K8S_BIN/kubectl
E2E_HELM=$HELM_BIN/helm
E2E_IMAGE=$E2E_IMAGE
E2E_PROJECT_IMAGE=$E2E_PROJECT_IMAGE
E2E_PGBOUNCER_IMAGE=${E2E_PGBOUNCER_IMAGE:-}
E2E_K8S_VERSION=$K8S_VERSION
E2E_DB_HOST=$BRIDGE_IP
E2E_DB_PORT=$PG_PORT
E2E_DB_USER=$PG_USER
E2E_DB_PASSWORD=$PG_PASSWORD
E2E_PSQL=psql
EOF
}

wait_default_service_account() {
    kc -n default get serviceaccount default >/dev/null 2>&1
}

# A cluster some of whose processes are gone (a failed `up`, a reboot, an
# ended session) is torn down and made afresh rather than patched.
teardown_stale_cluster() {
    [[ -d $PID_DIR || -d $E2E_STATE/pki ]] || return 0
    local c dead=()
    for c in "${COMPONENTS[@]}"; do
        is_running "$c" || dead+=("$c")
    done
    ((${#dead[@]})) || return 0
    log "found a partial or stale cluster (not running: ${dead[*]}): tearing it down first"
    local_down
}

local_up() {
    local start=$SECONDS
    check_prereqs
    teardown_stale_cluster
    mkdir -p "$E2E_STATE" "$E2E_RUN" "$LOG_DIR" "$PID_DIR"
    chmod 755 "$E2E_STATE"
    build_binaries
    setup_host_network
    make_pki
    start_etcd
    start_apiserver
    start_controller_manager
    start_scheduler
    start_containerd
    start_postgres
    prepare_images
    start_kubelet
    start_kube_proxy
    wait_for kube-controller-manager 60 "the default ServiceAccount" wait_default_service_account
    local c
    for c in kube-controller-manager kube-scheduler; do
        is_running "$c" || { log_tail "$c"; die "$c is not running"; }
    done
    write_env_file
    log "cluster up in $((SECONDS - start))s: KUBECONFIG=$KUBECONFIG_PATH, image $E2E_IMAGE, env $ENV_FILE"
}

local_down() {
    [[ $(id -u) == 0 ]] || die "down must run as root"
    local start=$SECONDS
    kwok_down
    scale_db_down
    stop_process kube-proxy
    stop_process kubelet
    remove_all_containers
    stop_process containerd
    local pid
    for pid in $(our_shim_pids); do
        kill -KILL "$pid" 2>/dev/null || true
    done
    remove_pod_cgroups
    stop_process kube-scheduler
    stop_process kube-controller-manager
    stop_process kube-apiserver
    stop_process etcd
    stop_postgres
    if [[ -x $K8S_BIN/kube-proxy ]]; then
        "$K8S_BIN/kube-proxy" --cleanup --proxy-mode iptables >/dev/null 2>&1 || true
    fi
    teardown_host_network
    unmount_under "$E2E_STATE" "$E2E_RUN" "$BUILDAH_RUNROOT"
    # The kubelet links container logs into /var/log/containers; drop ours.
    find /var/log/containers -maxdepth 1 -type l -lname "$E2E_STATE/*" -delete 2>/dev/null || true
    rmdir /var/log/containers 2>/dev/null || true
    rm -rf "$E2E_STATE" "$E2E_RUN"
    # containerd's shims keep fifos and sockets under /run/containerd whatever
    # the config says; drop the directories once they are empty.
    find /run/containerd -mindepth 1 -depth -type d -empty -delete 2>/dev/null || true
    rmdir /run/containerd 2>/dev/null || true
    log "cluster down in $((SECONDS - start))s"
}

local_status() {
    local c pid rc=0
    for c in "${COMPONENTS[@]}"; do
        pid=$(pid_of "$c")
        if is_running "$c"; then
            printf '%-24s running (pid %s)\n' "$c" "$pid"
        elif [[ -n $pid ]]; then
            printf '%-24s DEAD (pid %s; see %s)\n' "$c" "$pid" "$LOG_DIR/$c.log"
            rc=1
        else
            printf '%-24s not started\n' "$c"
            rc=1
        fi
    done
    for c in kwok postgres-scale pgbouncer-scale; do  # optional: the scale bench's
        if is_running "$c"; then printf '%-24s running (pid %s)\n' "$c" "$(pid_of "$c")"; fi
    done
    if [[ -f $ENV_FILE ]]; then
        echo
        grep -v '^#' "$ENV_FILE"
    fi
    if is_running kube-apiserver; then
        echo
        kc get nodes -o wide 2>&1 || rc=1
        kc get pods -A 2>&1 || true
    fi
    return $rc
}

# Restarts the e2e PostgreSQL (fast shutdown, down SECONDS, start) through the same
# helpers as up/down, so its recorded PID stays right (chaos scenarios use it).
local_pg_restart() {
    local down=${1:-0}
    is_running postgres || die "PostgreSQL is not running; run e2e/cluster up"
    stop_postgres
    sleep "$down"
    start_postgres
}

# Collects every component's log, the pods' logs and the cluster's view of
# itself into DIR (and DIR.tar.gz).
local_logs() {
    local out=${1:-$PWD/e2e-logs-$(date -u +%Y%m%dT%H%M%SZ)}
    mkdir -p "$out"
    [[ -d $LOG_DIR ]] && cp -r "$LOG_DIR" "$out/components"
    [[ -d $E2E_STATE/pod-logs ]] && cp -rL "$E2E_STATE/pod-logs" "$out/pods" 2>/dev/null
    local f
    for f in "$E2E_CACHE"/k8s/"$K8S_VERSION"/build.log "$E2E_CACHE"/etcd/"$ETCD_VERSION"/build.log \
        "$E2E_CACHE"/helm/"$HELM_VERSION"/build.log "$E2E_CACHE"/images/build.log "$E2E_CACHE"/wheels/pip.log \
        "$E2E_CACHE"/apt.log "$ENV_FILE" "$E2E_STATE"/kubelet-config.yaml "$E2E_STATE"/containerd/config.toml; do
        [[ -f $f ]] && cp "$f" "$out/$(echo "${f#/}" | tr / _)"
    done
    local_status >"$out/status.txt" 2>&1 || true
    if is_running kube-apiserver; then
        kc get all,events,jobs,serviceaccounts,roles,rolebindings -A -o wide >"$out/cluster-objects.txt" 2>&1 || true
        kc describe nodes >"$out/nodes.txt" 2>&1 || true
        kc describe pods -A >"$out/pods-describe.txt" 2>&1 || true
    fi
    {
        iptables-save 2>&1
        echo
        ip addr 2>&1
        echo
        ip route 2>&1
    } >"$out/host-network.txt"
    is_running containerd && ctr_k8s containers ls >"$out/containers.txt" 2>&1
    tar -C "$(dirname "$out")" -czf "$out.tar.gz" "$(basename "$out")"
    log "logs in $out and $out.tar.gz"
    echo "$out.tar.gz"
}
