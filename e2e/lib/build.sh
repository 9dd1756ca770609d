# shellcheck shell=bash
# Builds (once per version) the Kubernetes, etcd and Helm binaries with Go.
# Outputs land in $E2E_CACHE/<what>/<version>/bin; a warm run finds them there
# and builds nothing.

K8S_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

# -ldflags stamping the version the way hack/lib/version.sh does, so that
# `kubectl version` and the API's /version report $K8S_VERSION.
k8s_ldflags() {
    local minor pkg flags="-s -w"
    minor=$(echo "$K8S_VERSION" | cut -d. -f2)
    for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
        flags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
        flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
    done
    echo "$flags"
}

build_kubernetes() {
    local out=$E2E_CACHE/k8s/$K8S_VERSION c missing=0
    for c in "${K8S_COMMANDS[@]}"; do [[ -x $out/bin/$c ]] || missing=1; done
    ((missing)) || return 0
    grep -q "k8s.io/kubernetes $K8S_VERSION\$" "$E2E_DIR/k8sbuild/go.mod" ||
        die "e2e/k8sbuild/go.mod does not require k8s.io/kubernetes $K8S_VERSION: run e2e/k8sbuild/regen-gomod.sh $K8S_VERSION"
    mkdir -p "$out"
    rm -rf "$out/bin.tmp"
    log "building Kubernetes $K8S_VERSION (${K8S_COMMANDS[*]}); cold: ~15-25 min on 2 cores; log: $out/build.log"
    local pkgs=() start=$SECONDS
    for c in "${K8S_COMMANDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
    if ! (cd "$E2E_DIR/k8sbuild" &&
        env "${GO_ENV[@]}" CGO_ENABLED=0 nice -n "$E2E_NICE" \
            timeout 3600 go build -p "$E2E_GO_P" -trimpath -tags selinux,notest,grpcnotrace \
            -ldflags "$(k8s_ldflags)" -o "$out/bin.tmp/" "${pkgs[@]}") >"$out/build.log" 2>&1; then
        tail -n 30 "$out/build.log" >&2
        die "go build of Kubernetes $K8S_VERSION failed; log: $out/build.log"
    fi
    mv "$out/bin.tmp" "$out/bin.new" && rm -rf "$out/bin" && mv "$out/bin.new" "$out/bin"
    log "built Kubernetes $K8S_VERSION in $((SECONDS - start))s"
}

build_etcd() {
    local out=$E2E_CACHE/etcd/$ETCD_VERSION
    [[ -x $out/bin/etcd ]] && return 0
    grep -q "go.etcd.io/etcd/server/v3 $ETCD_VERSION\$" "$E2E_DIR/etcdbuild/go.mod" ||
        die "e2e/etcdbuild/go.mod does not require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    mkdir -p "$out/bin"
    log "building etcd $ETCD_VERSION; log: $out/build.log"
    local start=$SECONDS
    if ! (cd "$E2E_DIR/etcdbuild" &&
        env "${GO_ENV[@]}" CGO_ENABLED=0 nice -n "$E2E_NICE" \
            timeout 1800 go build -p "$E2E_GO_P" -trimpath -ldflags "-s -w" -o "$out/bin/etcd.tmp" .) >"$out/build.log" 2>&1; then
        tail -n 30 "$out/build.log" >&2
        die "go build of etcd $ETCD_VERSION failed; log: $out/build.log"
    fi
    mv "$out/bin/etcd.tmp" "$out/bin/etcd"
    log "built etcd $ETCD_VERSION in $((SECONDS - start))s"
}

build_helm() {
    local out=$E2E_CACHE/helm/$HELM_VERSION
    [[ -x $out/bin/helm ]] && return 0
    mkdir -p "$out/bin"
    log "building Helm $HELM_VERSION (go install); log: $out/build.log"
    local start=$SECONDS
    # go install pkg@version ignores the current module; run it from a
    # neutral directory so no go.mod around us matters.
    if ! (cd "$out" &&
        env "${GO_ENV[@]}" GOFLAGS=-buildvcs=false GOBIN="$out/bin" CGO_ENABLED=0 nice -n "$E2E_NICE" \
            timeout 1800 go install -p "$E2E_GO_P" -trimpath \
            -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
            "helm.sh/helm/v3/cmd/helm@$HELM_VERSION") >"$out/build.log" 2>&1; then
        tail -n 30 "$out/build.log" >&2
        die "go install of Helm $HELM_VERSION failed; log: $out/build.log"
    fi
    log "built Helm $HELM_VERSION in $((SECONDS - start))s"
}

# kwok (the simulated nodes of `e2e/cluster kwok-up`): built only when asked for.
build_kwok() {
    local out=$E2E_CACHE/kwok/$KWOK_VERSION
    [[ -x $out/bin/kwok ]] && return 0
    mkdir -p "$out/bin"
    log "building kwok $KWOK_VERSION (go install); cold: ~5-10 min on 2 cores; log: $out/build.log"
    local start=$SECONDS
    if ! (cd "$out" &&
        env "${GO_ENV[@]}" GOFLAGS=-buildvcs=false GOBIN="$out/bin" CGO_ENABLED=0 nice -n "$E2E_NICE" \
            timeout 1800 go install -p "$E2E_GO_P" -trimpath -ldflags "-s -w" \
            "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION") >"$out/build.log" 2>&1; then
        tail -n 30 "$out/build.log" >&2
        die "go install of kwok $KWOK_VERSION failed; log: $out/build.log"
    fi
    log "built kwok $KWOK_VERSION in $((SECONDS - start))s"
}

build_binaries() {
    build_kubernetes
    build_etcd
    build_helm
}
