# shellcheck shell=bash
# The kind provider, for machines with a Docker engine (a developer laptop).
# Same interface and env file as the local provider: kind makes the cluster,
# Docker builds the project image, `kind load image-archive` puts it on the
# node, and PostgreSQL runs as a pod (host networking differs per machine).
# It cannot run on the CI machines (no Docker engine there).

KIND_CLUSTER=${KIND_CLUSTER:-baton-e2e}
KIND_NODE_IMAGE=${KIND_NODE_IMAGE:-kindest/node:$K8S_VERSION}

kind_up() {
    command -v kind >/dev/null || die "kind not found: go install sigs.k8s.io/kind@latest"
    command -v kubectl >/dev/null || die "kubectl not found (https://kubernetes.io/docs/tasks/tools/)"
    docker info >/dev/null 2>&1 || die "no Docker engine answers ('docker info' failed): start Docker or use the local provider"
    mkdir -p "$E2E_STATE"
    if ! kind get clusters 2>/dev/null | grep -x "$KIND_CLUSTER" >/dev/null; then
        kind create cluster --name "$KIND_CLUSTER" --image "$KIND_NODE_IMAGE" --kubeconfig "$KUBECONFIG_PATH" --wait 180s
    else
        kind export kubeconfig --name "$KIND_CLUSTER" --kubeconfig "$KUBECONFIG_PATH"
    fi
    local tag archive
    tag=baton:dev-$(cd "$REPO_DIR" && content_hash "$REPO_DIR/pyproject.toml" "$REPO_DIR/Dockerfile" \
        "$REPO_DIR/runtime" "$REPO_DIR/operator" "$REPO_DIR/examples" | cut -c1-12)
    archive=$E2E_STATE/$(echo "$tag" | tr : -).tar
    if [[ ! -s $archive ]]; then
        rm -rf "$REPO_DIR/dist" && python3 -m pip wheel -q -w "$REPO_DIR/dist" "$REPO_DIR"
        docker build -t "$tag" "$REPO_DIR"
        docker save -o "$archive" "$tag"
    fi
    kind load image-archive "$archive" --name "$KIND_CLUSTER"
    # PostgreSQL for the pods, inside the cluster.
    kubectl --kubeconfig "$KUBECONFIG_PATH" apply -f - <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: e2e-db}
---
apiVersion: v1
kind: Pod
metadata: {name: postgres, namespace: e2e-db, labels: {app: postgres}}
spec:
  containers:
  - name: postgres
    image: postgres:15
    env:
    - {name: POSTGRES_USER, value: baton}
    - {name: POSTGRES_PASSWORD, value: baton-e2e}
    ports: [{containerPort: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: postgres, namespace: e2e-db}
spec:
  selector: {app: postgres}
  ports: [{port: 5432}]
EOF
    kubectl --kubeconfig "$KUBECONFIG_PATH" -n e2e-db wait --for=condition=Ready pod/postgres --timeout=180s
    cat >"$ENV_FILE" <<EOF
E2E_PROVIDER=kind
E2E_KUBECONFIG=$KUBECONFIG_PATH
E2E_KUBECTL=$(command -v kubectl)
E2E_HELM=$(command -v helm || echo helm)
E2E_IMAGE=$tag
E2E_PROJECT_IMAGE=1
E2E_K8S_VERSION=$K8S_VERSION
E2E_DB_HOST=postgres.e2e-db.svc.cluster.local
E2E_DB_PORT=5432
E2E_DB_USER=baton
E2E_DB_PASSWORD=baton-e2e
E2E_PSQL=kubectl --kubeconfig $KUBECONFIG_PATH -n e2e-db exec -i postgres -- psql
EOF
    log "kind cluster $KIND_CLUSTER up; env $ENV_FILE"
}

kind_down() {
    kind delete cluster --name "$KIND_CLUSTER"
    rm -rf "$E2E_STATE"
}

kind_status() {
    kind get clusters | grep -x "$KIND_CLUSTER" || { echo "kind cluster $KIND_CLUSTER: absent"; return 1; }
    kubectl --kubeconfig "$KUBECONFIG_PATH" get nodes -o wide
}

kind_logs() {
    local out=${1:-$PWD/e2e-logs-$(date -u +%Y%m%dT%H%M%SZ)}
    kind export logs "$out" --name "$KIND_CLUSTER"
    tar -C "$(dirname "$out")" -czf "$out.tar.gz" "$(basename "$out")"
    echo "$out.tar.gz"
}

kind_pg_restart() {
    die "pg-restart: not available with the kind provider (its PostgreSQL pod keeps no data across a restart)"
}
