# shellcheck shell=bash
# kwok: simulated nodes next to the real one, for the scale bench (bench/operator_scale.py).
#
# `e2e/cluster kwok-up [NODES]` builds kwok once (cached like Helm), starts its controller
# as a host process against the API server with the admin kubeconfig, and creates NODES
# (default 200) fake Nodes. kwok manages only Nodes annotated kwok.x-k8s.io/node=fake
# (--manage-nodes-with-annotation-selector), so the real node is never touched. The fake
# nodes are tainted kwok.x-k8s.io/node=fake:NoSchedule and labelled type=kwok: only pods
# that tolerate the taint land there. The Stages below make their pods Running and keep
# them Running (kwok's pod-complete stage is left out on purpose): the step simulator
# (bench/scale/simulator.py) runs each unit and then marks the pod Succeeded or Failed.

KWOK_BIN=$E2E_CACHE/kwok/$KWOK_VERSION/bin
KWOK_NODE_PREFIX=kwok-node-
KWOK_CONFIG=$E2E_STATE/kwok/kwok.yaml

# Stages copied from kwok v0.8.0 kustomize/stage/{node/fast,node/heartbeat-with-lease,
# pod/fast} (node-initialize, node-heartbeat-with-lease, pod-ready, pod-delete): the
# fast node lifecycle with a Lease heartbeat every 40 s (kwok's default
# nodeLeaseDurationSeconds), pods Pending → Running, and deleted pods removed. No
# KwokConfiguration document: kwok v0.8 applies its defaults (e.g. the stage
# parallelism) only when the config has none; the flags below set the rest.
write_kwok_config() {
    mkdir -p "$(dirname "$KWOK_CONFIG")"
    write_file "$KWOK_CONFIG" <<'EOF'
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: node-initialize
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchExpressions:
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'NotIn'
      values: ['True']
  next:
    statusTemplate: |
      {{ $now := Now }}
      {{ $lastTransitionTime := or .metadata.creationTimestamp $now }}
      conditions:
      {{ range NodeConditions }}
      - lastHeartbeatTime: {{ $now | Quote }}
        lastTransitionTime: {{ $lastTransitionTime | Quote }}
        message: {{ .message | Quote }}
        reason: {{ .reason | Quote }}
        status: {{ .status | Quote }}
        type: {{ .type  | Quote}}
      {{ end }}
      addresses:
      {{ with NodeIP }}
      - address: {{ . | Quote }}
        type: InternalIP
      {{ end }}
      {{ with NodeName }}
      - address: {{ . | Quote }}
        type: Hostname
      {{ end }}
      allocatable:
      {{ with .status.allocatable }}
      {{ YAML . 1 }}
      {{ else }}
        cpu: 1k
        memory: 1Ti
        pods: 1M
      {{ end }}
      capacity:
      {{ with .status.capacity }}
      {{ YAML . 1 }}
      {{ else }}
        cpu: 1k
        memory: 1Ti
        pods: 1M
      {{ end }}
      {{ $kwokVersion := printf "kwok-%s" Version }}
      nodeInfo:
        architecture: amd64
        bootID: ""
        containerRuntimeVersion: {{ $kwokVersion }}
        kernelVersion: {{ $kwokVersion }}
        kubeProxyVersion: {{ $kwokVersion }}
        kubeletVersion: {{ $kwokVersion }}
        machineID: ""
        operatingSystem: linux
        osImage: ""
        systemUUID: ""
      phase: Running
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: node-heartbeat-with-lease
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchExpressions:
    - key: '.status.phase'
      operator: 'In'
      values: ['Running']
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'In'
      values: ['True']
  delay:
    durationMilliseconds: 600000
    jitterDurationMilliseconds: 610000
  next:
    statusTemplate: |
      {{ $now := Now }}
      {{ $lastTransitionTime := or .metadata.creationTimestamp $now }}
      conditions:
      {{ range NodeConditions }}
      - lastHeartbeatTime: {{ $now | Quote }}
        lastTransitionTime: {{ $lastTransitionTime | Quote }}
        message: {{ .message | Quote }}
        reason: {{ .reason | Quote }}
        status: {{ .status | Quote }}
        type: {{ .type | Quote }}
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ready
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values: ['Pending']
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'NotIn'
      values: ['True']
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: ContainersReady
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: true
        restartCount: 0
        started: true
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}
      {{ $hostIPs := NodeIPsWith .spec.nodeName }}
      {{ with $hostIPs }}
      hostIP: {{ index . 0 | Quote }}
      hostIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      {{ $podIPs := PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
      {{ with $podIPs }}
      podIP: {{ index . 0 | Quote }}
      podIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      phase: Running
      startTime: {{ $now | Quote }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-delete
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'Exists'
  next:
    delete: true
EOF
}

# NODES fake Node objects as one kubectl List (applied once: idempotent).
kwok_nodes_manifest() {
    local n=$1 i
    echo '{"apiVersion": "v1", "kind": "List", "items": ['
    for ((i = 0; i < n; i++)); do
        ((i)) && echo ','
        cat <<EOF
{"apiVersion": "v1", "kind": "Node",
 "metadata": {"name": "$KWOK_NODE_PREFIX$i",
   "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
   "labels": {"type": "kwok", "kubernetes.io/hostname": "$KWOK_NODE_PREFIX$i",
              "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}},
 "spec": {"taints": [{"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}]},
 "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
            "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"}}}
EOF
    done
    echo ']}'
}

kwok_nodes_ready() {
    local want=$1 ready
    ready=$(kc get nodes -l type=kwok -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True)
    ((ready >= want))
}

kwok_up() {
    local nodes=${1:-200}
    [[ $nodes =~ ^[0-9]+$ ]] || die "kwok-up: NODES must be a number, got '$nodes'"
    is_running kube-apiserver || die "the cluster is not up: run e2e/cluster up first"
    build_kwok
    write_kwok_config
    start_process kwok "$KWOK_BIN/kwok" --config "$KWOK_CONFIG" \
        --kubeconfig "$KUBECONFIG_PATH" \
        --manage-all-nodes=false \
        --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
        --node-lease-duration-seconds 40 \
        --cidr 10.250.0.0/16 --node-ip 10.250.255.254
    log "creating $nodes fake nodes ($KWOK_NODE_PREFIX*, label type=kwok, taint kwok.x-k8s.io/node=fake:NoSchedule)"
    kwok_nodes_manifest "$nodes" | kc apply -f - >/dev/null
    wait_for kwok 180 "$nodes kwok nodes Ready" kwok_nodes_ready "$nodes"
    log "kwok up: $nodes fake nodes Ready (log $LOG_DIR/kwok.log)"
}

# Pods bound to the fake nodes, as namespace/name lines.
kwok_pods() {
    kc get pods -A -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name} {.spec.nodeName}{"\n"}{end}' 2>/dev/null |
        awk -v p="$KWOK_NODE_PREFIX" 'index($2, p) == 1 {print $1}'
}

# Removes the fake nodes and the pods left on them (force: no kubelet would confirm),
# then stops kwok. Only objects named or labelled as kwok's are touched. kwok stops
# before the nodes go, so that it renews no Lease behind the deletion.
kwok_down() {
    if is_running kube-apiserver; then
        local ref
        for ref in $(kwok_pods); do
            kc -n "${ref%%/*}" delete pod "${ref#*/}" --force --grace-period=0 --wait=false >/dev/null 2>&1 || true
        done
    fi
    stop_process kwok
    is_running kube-apiserver || return 0
    local names
    names=$(kc get nodes -l type=kwok -o name 2>/dev/null || true)
    [[ -n $names ]] || return 0
    log "deleting $(wc -l <<<"$names") fake nodes"
    kc delete nodes -l type=kwok --wait=false >/dev/null 2>&1 || true
    kc -n kube-node-lease get leases -o name 2>/dev/null | grep "/$KWOK_NODE_PREFIX" |
        xargs -r "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_PATH" --request-timeout=20s \
            -n kube-node-lease delete --wait=false >/dev/null 2>&1 || true
}
