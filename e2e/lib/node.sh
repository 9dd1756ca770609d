# shellcheck shell=bash
# The local provider's control plane and node: host network, etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler, containerd,
# kubelet and kube-proxy, each a process `up` started and recorded.

CNI_CONF_DIR=$E2E_STATE/cni/net.d
IPTABLES_TAG=baton-e2e
SYSCTLS=(net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables net.ipv4.conf.all.route_localnet)

# ---------------------------------------------------------------- network

# Records the sysctls we change (once), so `down` can put them back.
save_sysctls() {
    [[ -f $E2E_STATE/sysctl.saved ]] && return 0
    local s
    for s in "${SYSCTLS[@]}"; do
        echo "$s=$(sysctl -n "$s" 2>/dev/null || echo)"
    done >"$E2E_STATE/sysctl.saved"
}

restore_sysctls() {
    [[ -f $E2E_STATE/sysctl.saved ]] || return 0
    local line
    while IFS= read -r line; do
        [[ -n ${line#*=} ]] && sysctl -qw "$line" 2>/dev/null || true
    done <"$E2E_STATE/sysctl.saved"
}

# iptables_ensure TABLE CHAIN RULE... : appends the rule (tagged with our
# comment) unless it is already there.
iptables_ensure() {
    local table=$1 chain=$2
    shift 2
    iptables -t "$table" -C "$chain" "$@" -m comment --comment "$IPTABLES_TAG" 2>/dev/null ||
        iptables -t "$table" -A "$chain" "$@" -m comment --comment "$IPTABLES_TAG"
}

# Removes every rule carrying our comment (in the tables we use).
iptables_remove_ours() {
    local table rule
    for table in filter nat; do
        iptables -t "$table" -S 2>/dev/null | grep -F -- "--comment $IPTABLES_TAG" | while IFS= read -r rule; do
            # "-A CHAIN ..." -> "-D CHAIN ..."
            eval "iptables -t $table -D ${rule#-A }" 2>/dev/null || true
        done
    done
}

setup_host_network() {
    save_sysctls
    save_iptables_baseline
    sysctl -qw net.ipv4.ip_forward=1
    sysctl -qw net.bridge.bridge-nf-call-iptables=1
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        log "creating bridge $BRIDGE ($BRIDGE_IP/24)"
        ip link add "$BRIDGE" type bridge
    fi
    # A fixed, locally administered MAC: without one the bridge takes the lowest MAC
    # of its attached veths and changes it as pods come and go, and pods keep sending
    # to the old gateway MAC until their ARP entry expires (a connection to
    # PostgreSQL sat in retransmission for ~106 s). Set on reuse too.
    [[ $(cat "/sys/class/net/$BRIDGE/address" 2>/dev/null) == "$BRIDGE_MAC" ]] ||
        ip link set dev "$BRIDGE" address "$BRIDGE_MAC"
    ip addr show dev "$BRIDGE" | grep "inet $BRIDGE_IP/" >/dev/null || ip addr add "$BRIDGE_IP/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    # Pods reach the outside through the host (masquerade), and forwarding
    # to/from the bridge is allowed whatever the FORWARD policy is.
    iptables_ensure nat POSTROUTING -s "$POD_CIDR" ! -d "$POD_CIDR" -j MASQUERADE
    iptables_ensure filter FORWARD -i "$BRIDGE" -j ACCEPT
    iptables_ensure filter FORWARD -o "$BRIDGE" -j ACCEPT
    mkdir -p "$CNI_CONF_DIR" "$E2E_STATE/cni/ipam"
    write_file "$CNI_CONF_DIR/10-baton-e2e.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "baton-e2e",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$E2E_STATE/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$BRIDGE_IP"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

# Notes (once) whether Kubernetes/CNI iptables chains existed before our
# first `up`; if so, `down` leaves such chains alone.
save_iptables_baseline() {
    [[ -f $E2E_STATE/iptables.baseline ]] && return 0
    { iptables-save 2>/dev/null; ip6tables-save 2>/dev/null; } | grep -cE '^:(KUBE|CNI)-' >"$E2E_STATE/iptables.baseline" || true
}

# delete_chains CMD PATTERN : drops every jump to, and then every chain whose
# name matches PATTERN (an awk regex), in the filter, nat and mangle tables.
delete_chains() {
    local cmd=$1 pattern=$2 table chain rule
    command -v "$cmd" >/dev/null || return 0
    for table in filter nat mangle; do
        for chain in $("$cmd" -t "$table" -S 2>/dev/null | awk -v p="$pattern" '$1=="-N" && $2 ~ p {print $2}'); do
            "$cmd" -t "$table" -S 2>/dev/null | awk -v c="$chain" '$1=="-A" && $0 ~ ("-j " c "( |$)") {print}' |
                while IFS= read -r rule; do eval "$cmd -t $table -D ${rule#-A }" 2>/dev/null || true; done
        done
        for chain in $("$cmd" -t "$table" -S 2>/dev/null | awk -v p="$pattern" '$1=="-N" && $2 ~ p {print $2}'); do
            "$cmd" -t "$table" -F "$chain" 2>/dev/null || true
        done
        for chain in $("$cmd" -t "$table" -S 2>/dev/null | awk -v p="$pattern" '$1=="-N" && $2 ~ p {print $2}'); do
            "$cmd" -t "$table" -X "$chain" 2>/dev/null || true
        done
    done
}

teardown_host_network() {
    iptables_remove_ours
    if [[ $(cat "$E2E_STATE/iptables.baseline" 2>/dev/null || echo 0) == 0 ]]; then
        # kube-proxy's, the kubelet's (KUBE-FIREWALL, canaries) and portmap's chains
        delete_chains iptables '^(KUBE|CNI)-'
        delete_chains ip6tables '^(KUBE|CNI)-'
    else
        log "KUBE-/CNI- iptables chains existed before the first up: leaving them"
    fi
    ip link show "$BRIDGE" >/dev/null 2>&1 && ip link del "$BRIDGE" 2>/dev/null || true
    restore_sysctls
}

# ---------------------------------------------------------------- etcd

start_etcd() {
    local etcd=$ETCD_BIN/etcd
    [[ -x $etcd ]] || etcd=$(command -v etcd || true)
    [[ -n $etcd ]] || die "no etcd binary (build failed?)"
    mkdir -p "$E2E_STATE/etcd"
    chmod 700 "$E2E_STATE/etcd"
    start_process etcd "$etcd" \
        --name e2e --data-dir "$E2E_STATE/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
        --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "e2e=http://127.0.0.1:$ETCD_PEER_PORT" \
        --unsafe-no-fsync --log-level warn
    wait_for etcd 60 "etcd healthy" curl -fsS "http://127.0.0.1:$ETCD_CLIENT_PORT/health"
}

# ---------------------------------------------------------------- control plane

api_ready() {
    curl -fsS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
        "https://127.0.0.1:$API_PORT/readyz" >/dev/null
}

start_apiserver() {
    start_process kube-apiserver "$K8S_BIN/kube-apiserver" \
        --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
        --bind-address 0.0.0.0 --secure-port "$API_PORT" --advertise-address "$BRIDGE_IP" \
        --service-cluster-ip-range "$SERVICE_CIDR" \
        --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
        --client-ca-file "$PKI/ca.crt" \
        --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
        --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
        --kubelet-preferred-address-types InternalIP \
        --service-account-key-file "$PKI/sa.pub" \
        --service-account-signing-key-file "$PKI/sa.key" \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --authorization-mode Node,RBAC \
        --enable-admission-plugins NodeRestriction \
        --allow-privileged=true \
        --v 1
    wait_for kube-apiserver 120 "kube-apiserver /readyz" api_ready
}

start_controller_manager() {
    start_process kube-controller-manager "$K8S_BIN/kube-controller-manager" \
        --kubeconfig "$E2E_STATE/controller-manager.kubeconfig" \
        --authentication-kubeconfig "$E2E_STATE/controller-manager.kubeconfig" \
        --authorization-kubeconfig "$E2E_STATE/controller-manager.kubeconfig" \
        --bind-address 127.0.0.1 \
        --service-account-private-key-file "$PKI/sa.key" \
        --root-ca-file "$PKI/ca.crt" \
        --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
        --use-service-account-credentials=true \
        --allocate-node-cidrs=false --cluster-name baton-e2e \
        --leader-elect=false --v 1
}

start_scheduler() {
    start_process kube-scheduler "$K8S_BIN/kube-scheduler" \
        --kubeconfig "$E2E_STATE/scheduler.kubeconfig" \
        --authentication-kubeconfig "$E2E_STATE/scheduler.kubeconfig" \
        --authorization-kubeconfig "$E2E_STATE/scheduler.kubeconfig" \
        --bind-address 127.0.0.1 --leader-elect=false --v 1
}

# ---------------------------------------------------------------- containerd

write_containerd_config() {
    mkdir -p "$E2E_STATE/containerd" "$E2E_RUN/containerd"
    write_file "$E2E_STATE/containerd/config.toml" <<EOF
version = 2
root = "$E2E_STATE/containerd/root"
state = "$E2E_RUN/containerd/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$CONTAINERD_SOCK"

[ttrpc]
  address = "$CONTAINERD_SOCK.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  netns_mounts_under_state_dir = true
  # Lowering oom_score_adj needs CAP_SYS_RESOURCE, which this machine's
  # root lacks (runc would fail every sandbox with "failed to update
  # /proc/self/oom_score_adj: Permission denied"); clamp to containerd's own.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$E2E_RUN/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CNI_CONF_DIR"
    max_conf_num = 1
EOF
}

ctr_k8s() { timeout 60 ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }

start_containerd() {
    write_containerd_config
    start_process containerd containerd --config "$E2E_STATE/containerd/config.toml" --log-level warn
    wait_for containerd 60 "containerd socket $CONTAINERD_SOCK" ctr --address "$CONTAINERD_SOCK" version
}

# import_image ARCHIVE NAME : loads an OCI archive into containerd's k8s.io
# namespace under NAME, unless NAME is already there.
import_image() {
    local archive=$1 name=$2
    if ctr_k8s images ls -q | grep -xF "$name" >/dev/null; then
        return 0
    fi
    log "importing $name into containerd"
    local out
    out=$(ctr_k8s images import --all-platforms "$archive" 2>&1) || die "ctr images import $archive failed: $out"
    ctr_k8s images ls -q | grep -xF "$name" >/dev/null ||
        die "after importing $archive, containerd has no image named $name (it has: $(ctr_k8s images ls -q | tr '\n' ' '))"
}

# ---------------------------------------------------------------- kubelet

node_ready() {
    [[ $(kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

start_kubelet() {
    mkdir -p "$E2E_STATE/kubelet" "$E2E_STATE/pod-logs"
    write_file "$E2E_STATE/kubelet-config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $BRIDGE_IP
port: 10250
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
cgroupDriver: cgroupfs
# This host is cgroup v1 (hybrid); 1.34 still runs there when told to.
failCgroupV1: false
failSwapOn: false
# No cluster DNS (no CoreDNS): pods use the host's resolver.
resolvConf: /etc/resolv.conf
clusterDomain: cluster.local
podLogsDir: $E2E_STATE/pod-logs
# Image GC off (100%): the locally built pause and project images can never
# be pulled again, so the kubelet must not delete them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
maxPods: 110
EOF
    start_process kubelet "$K8S_BIN/kubelet" \
        --config "$E2E_STATE/kubelet-config.yaml" \
        --kubeconfig "$E2E_STATE/kubelet.kubeconfig" \
        --root-dir "$E2E_STATE/kubelet" \
        --hostname-override "$NODE_NAME" --node-ip "$BRIDGE_IP" \
        --oom-score-adj 0 --v 1
    wait_for kubelet 120 "node $NODE_NAME Ready" node_ready
}

# ---------------------------------------------------------------- kube-proxy

api_service_programmed() {
    iptables -t nat -S KUBE-SERVICES 2>/dev/null | grep -- "-d $API_SERVICE_IP/32" >/dev/null
}

start_kube_proxy() {
    write_file "$E2E_STATE/kube-proxy-config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: $CLUSTER_CIDR
hostnameOverride: $NODE_NAME
clientConnection:
  kubeconfig: $E2E_STATE/kube-proxy.kubeconfig
oomScoreAdj: 0
nodePortAddresses: [primary]
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
# Leave the host's conntrack sysctls alone.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
    start_process kube-proxy "$K8S_BIN/kube-proxy" --config "$E2E_STATE/kube-proxy-config.yaml" --v 1
    wait_for kube-proxy 60 "kube-proxy programming $API_SERVICE_IP" api_service_programmed
}

# ---------------------------------------------------------------- teardown helpers

# Kills every container of our containerd (while it still runs).
remove_all_containers() {
    is_running containerd || return 0
    local id
    for id in $(ctr_k8s tasks ls -q 2>/dev/null); do
        ctr_k8s tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
    sleep 1
    for id in $(ctr_k8s tasks ls -q 2>/dev/null); do
        ctr_k8s tasks delete -f "$id" >/dev/null 2>&1 || true
    done
    for id in $(ctr_k8s containers ls -q 2>/dev/null); do
        ctr_k8s containers delete "$id" >/dev/null 2>&1 || true
    done
}

# PIDs of containerd shims serving our containerd (their command line names
# our private socket, so no other containerd's shims match).
our_shim_pids() {
    local p
    for p in /proc/[0-9]*; do
        tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -- "-address $CONTAINERD_SOCK " >/dev/null && basename "$p"
    done
    return 0
}

# Kills what is left in the kubelet's pod cgroups and removes them.
remove_pod_cgroups() {
    local ctl dir pid
    for ctl in /sys/fs/cgroup/*/; do
        dir=${ctl}kubepods
        [[ -d $dir ]] || continue
        for pid in $(find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null || true
        done
    done
    sleep 0.5
    for ctl in /sys/fs/cgroup/*/; do
        dir=${ctl}kubepods
        [[ -d $dir ]] || continue
        find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
}

unmount_under() {
    local root m
    for root in "$@"; do
        # deepest first
        findmnt -rn -o TARGET | awk -v r="$root" 'index($0, r) == 1' | sort -r | while IFS= read -r m; do
            umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
        done
    done
}
