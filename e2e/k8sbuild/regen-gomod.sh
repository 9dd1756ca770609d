#!/usr/bin/env bash
# Regenerates go.mod/go.sum for another Kubernetes release:
#   e2e/k8sbuild/regen-gomod.sh v1.34.5
# k8s.io/kubernetes points its staging modules (k8s.io/api, client-go, ...)
# at ./staging/src, which the published module lacks; we replace each one
# with its published v0.MINOR.PATCH twin, reading the list from the
# downloaded go.mod so none is missed. Then bump K8S_VERSION in versions.env.
set -euo pipefail
version=${1:?usage: $0 vX.Y.Z}
staging_version=v0.${version#v1.}
cd "$(dirname "${BASH_SOURCE[0]}")"
export GOMODCACHE=${E2E_CACHE:-/var/cache/baton-e2e}/go/mod GOFLAGS=-mod=mod
gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
{
    echo "// Build-only module: pins the Kubernetes release the e2e cluster runs."
    echo "// Regenerate with e2e/k8sbuild/regen-gomod.sh VERSION."
    echo "module baton.local/e2e/k8sbuild"
    echo
    echo "go $(awk '$1=="go" {print $2; exit}' "$gomod")"
    echo
    echo "godebug default=go1.24"
    echo
    echo "require k8s.io/kubernetes $version"
    echo
    echo "// Every staging module of k8s.io/kubernetes (its own go.mod points them at"
    echo "// ./staging/src, which does not exist in the published module)."
    echo "replace ("
    grep '=> ./staging/src' "$gomod" | awk -v sv="$staging_version" '{print "\t" $1 " => " $1 " " sv}'
    echo ")"
} >go.mod
rm -f go.sum
go mod tidy
echo "go.mod regenerated for $version; set K8S_VERSION=$version in e2e/versions.env"
