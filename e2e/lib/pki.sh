# shellcheck shell=bash
# The cluster's certificates (openssl) and kubeconfigs. Made once per
# cluster; `up` on an existing cluster reuses them.

# new_cert NAME CN ORG [SANS] : a key and a CA-signed certificate in $PKI.
new_cert() {
    local name=$1 cn=$2 org=$3 sans=${4:-}
    [[ -s $PKI/$name.crt ]] && return 0
    local subj="/CN=$cn"
    [[ -n $org ]] && subj="/O=$org$subj"
    local ext=$PKI/$name.ext
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        if [[ -n $sans ]]; then
            echo "extendedKeyUsage=serverAuth,clientAuth"
            echo "subjectAltName=$sans"
        else
            echo "extendedKeyUsage=clientAuth"
        fi
    } >"$ext"
    openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
    openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
    openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
        -days 3650 -sha256 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
    rm -f "$PKI/$name.csr" "$ext"
}

# write_kubeconfig FILE CERT_NAME : a kubeconfig authenticating with a client cert.
write_kubeconfig() {
    local file=$1 cert=$2 server=${3:-https://127.0.0.1:$API_PORT}
    write_file "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: baton-e2e
  cluster:
    certificate-authority: $PKI/ca.crt
    server: $server
users:
- name: $cert
  user:
    client-certificate: $PKI/$cert.crt
    client-key: $PKI/$cert.key
contexts:
- name: baton-e2e
  context:
    cluster: baton-e2e
    user: $cert
    namespace: default
current-context: baton-e2e
EOF
    chmod 600 "$file"
}

make_pki() {
    mkdir -p "$PKI"
    chmod 700 "$PKI"
    if [[ ! -s $PKI/ca.crt ]]; then
        log "creating the cluster CA and certificates"
        openssl genrsa -out "$PKI/ca.key" 2048 2>/dev/null
        openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=baton-e2e-ca" -days 3650 -sha256 \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
            -out "$PKI/ca.crt" 2>/dev/null
    fi
    local host
    host=$(hostname)
    new_cert apiserver kube-apiserver "" \
        "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,DNS:$host,IP:127.0.0.1,IP:$API_SERVICE_IP,IP:$BRIDGE_IP"
    new_cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
    new_cert admin baton-e2e-admin system:masters
    new_cert controller-manager system:kube-controller-manager ""
    new_cert scheduler system:kube-scheduler ""
    new_cert kube-proxy system:kube-proxy ""
    new_cert kubelet "system:node:$NODE_NAME" system:nodes
    new_cert kubelet-serving "system:node:$NODE_NAME" system:nodes "DNS:$NODE_NAME,DNS:localhost,IP:127.0.0.1,IP:$BRIDGE_IP"
    if [[ ! -s $PKI/sa.key ]]; then
        openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
        openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
    fi
    write_kubeconfig "$KUBECONFIG_PATH" admin
    write_kubeconfig "$E2E_STATE/controller-manager.kubeconfig" controller-manager
    write_kubeconfig "$E2E_STATE/scheduler.kubeconfig" scheduler
    write_kubeconfig "$E2E_STATE/kube-proxy.kubeconfig" kube-proxy
    write_kubeconfig "$E2E_STATE/kubelet.kubeconfig" kubelet
}
