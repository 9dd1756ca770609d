# shellcheck shell=bash
# Shared settings and helpers for e2e/cluster. Sourced, never run.

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_DIR=$(cd "$E2E_DIR/.." && pwd)
# shellcheck source=../versions.env
source "$E2E_DIR/versions.env"

# Heavy, reusable things (Go caches, binaries, base rootfs, image archives),
# keyed by version below this directory. Survives `down`.
E2E_CACHE=${E2E_CACHE:-/var/cache/baton-e2e}
# Everything one running cluster owns (certs, etcd data, logs, pids,
# kubeconfig). `down` removes it.
E2E_STATE=${E2E_STATE:-/var/lib/baton-e2e}
E2E_RUN=${E2E_RUN:-/run/baton-e2e}

# Go build parallelism: the CI machine has 2 cores shared with other work.
E2E_GO_P=${E2E_GO_P:-2}
E2E_NICE=${E2E_NICE:-10}

# Network layout. Everything the cluster talks over lives on the cni0 bridge
# (made by `up`) and loopback: the node IP and API advertise address are the
# bridge gateway, so nothing depends on the host's own interfaces.
NODE_NAME=e2e-node
BRIDGE=cni0
POD_CIDR=10.244.0.0/24
CLUSTER_CIDR=10.244.0.0/16
BRIDGE_IP=10.244.0.1
# Locally administered (02:...), derived from the gateway IP 10.244.0.1.
BRIDGE_MAC=02:62:0a:f4:00:01
SERVICE_CIDR=10.96.0.0/12
API_SERVICE_IP=10.96.0.1
API_PORT=6443
ETCD_CLIENT_PORT=12379
ETCD_PEER_PORT=12380
PG_PORT=${E2E_PG_PORT:-5432}

KUBECONFIG_PATH=$E2E_STATE/kubeconfig
ENV_FILE=$E2E_STATE/e2e.env
LOG_DIR=$E2E_STATE/logs
PID_DIR=$E2E_STATE/pids
PKI=$E2E_STATE/pki
CONTAINERD_SOCK=$E2E_RUN/containerd/containerd.sock

K8S_BIN=$E2E_CACHE/k8s/$K8S_VERSION/bin
ETCD_BIN=$E2E_CACHE/etcd/$ETCD_VERSION/bin
HELM_BIN=$E2E_CACHE/helm/$HELM_VERSION/bin
GO_ENV=(GOMODCACHE="$E2E_CACHE/go/mod" GOCACHE="$E2E_CACHE/go/build" "GOFLAGS=-mod=mod -buildvcs=false" GOTOOLCHAIN=local)

# ---------------------------------------------------------------- logging

log()  { printf '%s [e2e] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die()  { printf '%s [e2e] ERROR: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; exit 1; }

# Prints the last lines of a component's log, for a failure message.
log_tail() {
    local name=$1 lines=${2:-40}
    if [[ -f $LOG_DIR/$name.log ]]; then
        echo "----- last $lines lines of $LOG_DIR/$name.log -----" >&2
        tail -n "$lines" "$LOG_DIR/$name.log" >&2
        echo "-----" >&2
    fi
}

# ---------------------------------------------------------------- processes

# A pid file holds "PID STARTTIME" (field 22 of /proc/PID/stat), so a PID
# reused by some other process after a reboot is never taken for ours.
pid_of() { awk '{print $1}' "$PID_DIR/$1.pid" 2>/dev/null || true; }

proc_starttime() { awk '{sub(/^.*\) /, ""); print $20}' "/proc/$1/stat" 2>/dev/null; }

# True while the recorded process for NAME is alive (and not a zombie).
is_running() {
    local pid start
    [[ -f $PID_DIR/$1.pid ]] || return 1
    read -r pid start <"$PID_DIR/$1.pid" || return 1
    [[ -n $pid && -d /proc/$pid ]] || return 1
    [[ -z $start || $(proc_starttime "$pid") == "$start" ]] || return 1
    [[ $(awk '{sub(/^.*\) /, ""); print $1}' "/proc/$pid/stat" 2>/dev/null) != Z ]]
}

# start_process NAME CMD... : runs CMD in its own session, output to
# $LOG_DIR/NAME.log, PID recorded in $PID_DIR/NAME.pid. No-op when running.
start_process() {
    local name=$1
    shift
    if is_running "$name"; then
        log "$name already running (pid $(pid_of "$name"))"
        return 0
    fi
    mkdir -p "$LOG_DIR" "$PID_DIR"
    log "starting $name"
    echo "=== $(date -u +%FT%TZ) $*" >>"$LOG_DIR/$name.log"
    # Long-lived processes must hold no inherited descriptor: fd 9 is the cluster lock
    # (e2e/cluster), and a caller's own lock (flock around `make e2e`) would stay
    # held for as long as the cluster runs.
    (
        for fd in $(ls /proc/$BASHPID/fd); do
            if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
        done
        exec setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null
    ) &
    local pid=$!
    echo "$pid $(proc_starttime "$pid")" >"$PID_DIR/$name.pid"
}

# stop_process NAME : TERM, then KILL after a bounded wait; only the PID `up`
# recorded (and its session, which setsid made its own).
stop_process() {
    local name=$1 pid i
    pid=$(pid_of "$name")
    if [[ -z $pid ]]; then return 0; fi
    if is_running "$name"; then
        log "stopping $name (pid $pid)"
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 1 40); do
            [[ -d /proc/$pid ]] || break
            sleep 0.25
        done
        if [[ -d /proc/$pid ]]; then
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
        fi
    fi
    rm -f "$PID_DIR/$name.pid"
}

# wait_for NAME TIMEOUT_S DESCRIPTION CMD... : polls CMD once a second. Fails
# fast with the log tail if NAME's process died, and after TIMEOUT_S anyway.
# NAME may be "-" for a wait that belongs to no process of ours.
wait_for() {
    local name=$1 timeout=$2 what=$3
    shift 3
    local deadline=$((SECONDS + timeout))
    while ! "$@" >/dev/null 2>&1; do
        if [[ $name != - ]] && ! is_running "$name"; then
            log_tail "$name"
            die "$name exited while waiting for: $what"
        fi
        if ((SECONDS >= deadline)); then
            [[ $name != - ]] && log_tail "$name"
            die "timed out after ${timeout}s waiting for: $what"
        fi
        sleep 1
    done
}

# write_file FILE < content : replaces FILE only when the content differs, and
# atomically (kube-proxy exits when its config file changes; containerd
# reloads the CNI config on every write).
write_file() {
    local file=$1 tmp
    tmp=$(mktemp "$file.XXXXXX")
    cat >"$tmp"
    if cmp -s "$tmp" "$file"; then
        rm -f "$tmp"
    else
        chmod 644 "$tmp"
        mv -f "$tmp" "$file"
    fi
}

kc() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" --request-timeout=20s "$@"; }

# A short, stable hash of the given files' contents (for cache keys/tags).
content_hash() {
    local f
    for f in "$@"; do
        [[ -e $f ]] || continue
        if [[ -d $f ]]; then
            find "$f" -type f ! -path '*/__pycache__/*' ! -path '*.egg-info/*' ! -name '*.pyc' -print0 | sort -z | xargs -0 -r sha256sum
        else
            sha256sum "$f"
        fi
    done | sed "s#  $REPO_DIR/#  #" | sha256sum | cut -c1-12
}
