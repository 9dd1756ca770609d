# shellcheck shell=bash
# Prerequisite checks and the (idempotent) Debian package installs.

# Debian packages the local provider runs on, and the command each provides
# (used to tell whether the package is already there).
APT_PACKAGES=(
    containerd:containerd
    runc:runc
    containernetworking-plugins:/usr/lib/cni/bridge
    iptables:iptables
    conntrack:conntrack
    buildah:buildah
    mmdebstrap:mmdebstrap
    catatonit:catatonit
    postgresql:/usr/lib/postgresql
    openssl:openssl
    curl:curl
    ca-certificates:/etc/ssl/certs/ca-certificates.crt
    # not for the cluster: e2e/tests/test_dashboard.py runs it on the host to
    # evaluate the Grafana dashboard's queries against the operator's metrics
    prometheus:/usr/bin/prometheus
    # the pgbouncer image of e2e/tests/test_pgbouncer.py is made from it (image.sh)
    pgbouncer:/usr/sbin/pgbouncer
)

have() {
    if [[ $1 == /* ]]; then [[ -e $1 ]]; else command -v "$1" >/dev/null 2>&1; fi
}

# Installs the missing Debian packages. Service starts are suppressed so that
# nothing we did not ask for runs (the cluster starts its own processes).
install_apt_packages() {
    local missing=() entry pkg cmd
    for entry in "${APT_PACKAGES[@]}"; do
        pkg=${entry%%:*}
        cmd=${entry#*:}
        have "$cmd" || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    command -v apt-get >/dev/null ||
        die "missing packages (${missing[*]}) and no apt-get: install them with your distribution's package manager"
    log "installing Debian packages: ${missing[*]}"
    local created_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    local rc=0
    {
        timeout 300 apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}"
    } >"$E2E_CACHE/apt.log" 2>&1 || rc=$?
    ((created_policy)) && rm -f /usr/sbin/policy-rc.d
    if ((rc)); then
        tail -n 20 "$E2E_CACHE/apt.log" >&2
        die "apt-get install ${missing[*]} failed (rc=$rc); full log: $E2E_CACHE/apt.log"
    fi
}

# Checks what cannot be installed for you; says what is wrong and how to fix it.
check_prereqs() {
    [[ $(id -u) == 0 ]] || die "the local provider must run as root (it starts containerd, kubelet and edits iptables): run 'sudo $0 up', or use E2E_PROVIDER=kind on a machine with Docker"
    [[ $(uname -s) == Linux ]] || die "the local provider needs Linux; use E2E_PROVIDER=kind"
    mkdir -p "$E2E_CACHE"
    command -v go >/dev/null ||
        die "Go is not installed: the Kubernetes, etcd and Helm binaries are built from source. Install Go >= 1.26 from https://go.dev/dl/ and put it on PATH (Debian bookworm's golang package is too old)"
    local gov
    gov=$(go env GOVERSION | sed 's/^go//')
    if ! printf '1.26\n%s\n' "$gov" | sort -V -C; then
        die "Go $gov is too old: need >= 1.26 (Helm $HELM_VERSION and etcd $ETCD_VERSION require it)"
    fi
    local ctl
    for ctl in cpu cpuacct memory pids devices freezer; do
        [[ -d /sys/fs/cgroup/$ctl || -f /sys/fs/cgroup/cgroup.controllers ]] ||
            die "cgroup controller '$ctl' is not mounted at /sys/fs/cgroup/$ctl: kubelet needs it"
    done
    grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null ||
        die "the kernel has no overlay filesystem (containerd's snapshotter needs it): 'modprobe overlay'"
    if [[ ! -d /proc/sys/net/bridge ]]; then
        modprobe br_netfilter 2>/dev/null ||
            die "no br_netfilter (/proc/sys/net/bridge missing): 'modprobe br_netfilter'"
    fi
    install_apt_packages
    local c
    for c in containerd runc iptables conntrack buildah mmdebstrap catatonit openssl curl setpriv prometheus; do
        command -v "$c" >/dev/null || die "'$c' is still missing after the package install: see $E2E_CACHE/apt.log"
    done
    [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/portmap && -x /usr/lib/cni/loopback ]] ||
        die "CNI plugins missing from /usr/lib/cni: apt-get install containernetworking-plugins"
    pg_bindir >/dev/null || die "PostgreSQL server binaries not found under /usr/lib/postgresql: apt-get install postgresql"
    id postgres >/dev/null 2>&1 || die "no 'postgres' user (the Debian postgresql package creates it)"
}

# Directory holding initdb/postgres of the newest installed PostgreSQL.
pg_bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)
    [[ -n $d && -x $d/postgres ]] && echo "$d"
}
