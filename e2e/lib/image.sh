# shellcheck shell=bash
# Images for the local provider, built with buildah (no registry, no Docker):
#  - the pause (sandbox) image: Debian's static catatonit, tagged $PAUSE_IMAGE
#  - a Debian + python3 base made with mmdebstrap (the Dockerfile's BASE_IMAGE)
#  - the project image from the project's own Dockerfile
# Each is written once as an OCI archive under $E2E_CACHE/images and then
# imported into containerd by `up`.

BUILDAH_ROOT=$E2E_CACHE/buildah/storage
BUILDAH_RUNROOT=$E2E_RUN/buildah
IMAGES=$E2E_CACHE/images
# What the base image holds; part of its cache key.
BASE_PACKAGES=python3,python3-venv,ca-certificates,tzdata
BASE_MIRRORS=(
    "deb http://deb.debian.org/debian $BASE_SUITE main"
    "deb http://deb.debian.org/debian $BASE_SUITE-updates main"
    "deb http://deb.debian.org/debian-security $BASE_SUITE-security main"
)

bah() { buildah --root "$BUILDAH_ROOT" --runroot "$BUILDAH_RUNROOT" --storage-driver overlay "$@"; }

buildah_has_image() { bah images -q "$1" >/dev/null 2>&1 && [[ -n $(bah images -q "$1" 2>/dev/null) ]]; }

# push_oci_archive LOCAL_IMAGE ARCHIVE NAME : writes an OCI archive whose
# image is named NAME (what containerd will call it).
push_oci_archive() {
    local image=$1 archive=$2 name=$3
    mkdir -p "$(dirname "$archive")"
    bah push --quiet "$image" "oci-archive:$archive.tmp:$name" >/dev/null ||
        die "buildah push $image to $archive failed"
    mv "$archive.tmp" "$archive"
}

# ---------------------------------------------------------------- pause

pause_archive() {
    echo "$IMAGES/pause-$(sha256sum /usr/bin/catatonit | cut -c1-12).tar"
}

build_pause_image() {
    local archive
    archive=$(pause_archive)
    [[ -s $archive ]] && return 0
    log "building the pause image $PAUSE_IMAGE from /usr/bin/catatonit"
    file -L /usr/bin/catatonit 2>/dev/null | grep 'statically linked' >/dev/null ||
        ldd /usr/bin/catatonit 2>&1 | grep 'not a dynamic' >/dev/null ||
        die "/usr/bin/catatonit is not statically linked; cannot make a scratch pause image from it"
    local ctr
    ctr=$(bah from scratch)
    bah copy "$ctr" /usr/bin/catatonit /pause >/dev/null
    bah config --entrypoint '["/pause", "-P"]' "$ctr"
    bah commit --quiet --rm "$ctr" localhost/baton-e2e-pause:latest >/dev/null
    push_oci_archive localhost/baton-e2e-pause:latest "$archive" "$PAUSE_IMAGE"
}

# ---------------------------------------------------------------- base image

base_key() {
    echo "$BASE_SUITE-$(printf '%s\n' "$BASE_PACKAGES" "${BASE_MIRRORS[@]}" | sha256sum | cut -c1-8)"
}

base_image_name() { echo "localhost/baton-e2e-python:$(base_key)"; }

# A Debian + python3 root filesystem (mmdebstrap, cached as a tarball) made
# into a buildah image.
build_base_image() {
    local key name dir
    key=$(base_key)
    name=$(base_image_name)
    dir=$E2E_CACHE/base/$key
    if [[ ! -s $dir/rootfs.tar ]]; then
        mkdir -p "$dir"
        log "making the Debian $BASE_SUITE + python3 base rootfs with mmdebstrap; log: $dir/mmdebstrap.log"
        local start=$SECONDS
        if ! nice -n "$E2E_NICE" timeout 900 mmdebstrap --variant=minbase --include="$BASE_PACKAGES" \
            --aptopt='Acquire::Retries "3"' \
            --customize-hook='rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' \
            "$BASE_SUITE" "$dir/rootfs.tar.tmp" "${BASE_MIRRORS[@]}" >"$dir/mmdebstrap.log" 2>&1; then
            tail -n 20 "$dir/mmdebstrap.log" >&2
            die "mmdebstrap failed; log: $dir/mmdebstrap.log"
        fi
        mv "$dir/rootfs.tar.tmp" "$dir/rootfs.tar"
        log "base rootfs made in $((SECONDS - start))s"
    fi
    buildah_has_image "$name" && return 0
    log "importing the base rootfs as $name"
    local ctr
    ctr=$(bah from scratch)
    bah add "$ctr" "$dir/rootfs.tar" / >/dev/null
    bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --env LANG=C.UTF-8 --cmd '["python3"]' "$ctr"
    bah commit --quiet --rm "$ctr" "$name" >/dev/null
}

# ---------------------------------------------------------------- project image

# The tag names the content: sources, examples, Dockerfile and base.
project_image_tag() {
    echo "baton:dev-$(cd "$REPO_DIR" && { content_hash "$REPO_DIR/pyproject.toml" "$REPO_DIR/Dockerfile" \
        "$REPO_DIR/.dockerignore" "$REPO_DIR/runtime" "$REPO_DIR/operator" "$REPO_DIR/examples"
        base_key; } | sha256sum | cut -c1-12)"
}

# project_archive TAG
project_archive() { echo "$IMAGES/$(echo "$1" | tr ':' '-').tar"; }

# Wheels for the project and all its dependencies, built on the host (pods
# and buildah RUN steps have no network). Dependency wheels are cached by
# the hash of pyproject.toml.
build_wheels() {
    local out=$1
    local host_py base_py=3.11
    host_py=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    [[ $host_py == "$base_py" ]] ||
        die "host python3 is $host_py but the $BASE_SUITE base image has $base_py: wheels must match (use a python$base_py on PATH)"
    local wheelhouse=$E2E_CACHE/wheels/$(content_hash "$REPO_DIR/pyproject.toml")
    local src=$E2E_STATE/wheel-src
    mkdir -p "$wheelhouse" "$out"
    # Build from a copy: an in-tree setuptools build would leave build/ and
    # *.egg-info in the checkout.
    rm -rf "$src" && mkdir -p "$src"
    tar -C "$REPO_DIR" --exclude=./.git --exclude=./e2e --exclude=./bench --exclude='*.egg-info' \
        --exclude=./build --exclude=./dist --exclude='__pycache__' --exclude='.venv' --exclude='.*_cache' \
        -cf - . | tar -C "$src" -xf -
    log "building wheels (project + dependencies) into $out"
    if ! timeout 900 python3 -m pip wheel --quiet --find-links "$wheelhouse" -w "$wheelhouse" "$src" \
        >"$E2E_CACHE/wheels/pip.log" 2>&1; then
        tail -n 20 "$E2E_CACHE/wheels/pip.log" >&2
        die "pip wheel failed; log: $E2E_CACHE/wheels/pip.log"
    fi
    rm -rf "$src"
    # the project's own wheel goes to this build only, never to the cache
    mv "$wheelhouse"/baton-*.whl "$out"/
    cp "$wheelhouse"/*.whl "$out"/
}

# build_project_image TAG (the tag is computed once per `up`: the sources may
# change while we build).
build_project_image() {
    local tag=$1 archive
    archive=$(project_archive "$tag")
    [[ -s $archive ]] && return 0
    [[ -f $REPO_DIR/Dockerfile ]] || die "no Dockerfile at $REPO_DIR"
    local ctx=$E2E_STATE/image-context start=$SECONDS
    rm -rf "$ctx"
    mkdir -p "$ctx"
    build_wheels "$ctx/dist"
    cp "$REPO_DIR/Dockerfile" "$ctx/"
    [[ -f $REPO_DIR/.dockerignore ]] && cp "$REPO_DIR/.dockerignore" "$ctx/"
    cp -r "$REPO_DIR/examples" "$ctx/examples"
    log "building $tag from the project's Dockerfile (BASE_IMAGE=$(base_image_name)); log: $IMAGES/build.log"
    mkdir -p "$IMAGES"
    if ! nice -n "$E2E_NICE" timeout 900 buildah --root "$BUILDAH_ROOT" --runroot "$BUILDAH_RUNROOT" \
        --storage-driver overlay build --pull=never --isolation=chroot --network=host --layers=false \
        --build-arg "BASE_IMAGE=$(base_image_name)" -t "localhost/$tag" -f "$ctx/Dockerfile" "$ctx" \
        >"$IMAGES/build.log" 2>&1; then
        tail -n 30 "$IMAGES/build.log" >&2
        die "buildah build of the project image failed; log: $IMAGES/build.log"
    fi
    push_oci_archive "localhost/$tag" "$archive" "docker.io/library/$tag"
    bah rmi "localhost/$tag" >/dev/null 2>&1 || true
    rm -rf "$ctx"
    # keep the three newest project archives
    ls -1t "$IMAGES"/baton-dev-*.tar 2>/dev/null | tail -n +4 | xargs -r rm -f
    log "built $tag in $((SECONDS - start))s"
}

# ---------------------------------------------------------------- pgbouncer image

# PgBouncer for the scenarios that enable the chart's pgbouncer (test_pgbouncer): the
# base image plus Debian's pgbouncer (installed on the host with the other packages;
# the host is Debian $BASE_SUITE like the base) and the two shared libraries of it that
# the base lacks. The tag names the content: the binary and the base.
pgbouncer_image_name() {
    echo "baton-e2e-pgbouncer:$({ sha256sum /usr/sbin/pgbouncer; base_key; } | sha256sum | cut -c1-12)"
}

pgbouncer_archive() { echo "$IMAGES/$(pgbouncer_image_name | tr ':' '-').tar"; }

build_pgbouncer_image() {
    local archive name ctr lib
    archive=$(pgbouncer_archive)
    [[ -s $archive ]] && return 0
    name=$(pgbouncer_image_name)
    log "building $name from Debian's pgbouncer"
    ctr=$(bah from --pull=never "$(base_image_name)")
    bah copy "$ctr" /usr/sbin/pgbouncer /usr/sbin/pgbouncer >/dev/null
    for lib in $(ldd /usr/sbin/pgbouncer | awk '/libcares|libevent/ {print $3}'); do
        bah copy "$ctr" "$(readlink -f "$lib")" "$lib" >/dev/null
    done
    bah run --isolation=chroot "$ctr" -- /usr/sbin/pgbouncer --version >/dev/null || die "pgbouncer does not run in $name"
    bah config --entrypoint '["/usr/sbin/pgbouncer"]' --cmd '[]' --user 10001:10001 "$ctr"
    bah commit --quiet --rm "$ctr" "localhost/$name" >/dev/null
    push_oci_archive "localhost/$name" "$archive" "docker.io/library/$name"
    bah rmi "localhost/$name" >/dev/null 2>&1 || true
    ls -1t "$IMAGES"/baton-e2e-pgbouncer-*.tar 2>/dev/null | tail -n +3 | xargs -r rm -f
}

# Sets E2E_IMAGE (what the scenarios run) and imports the images containerd
# needs. Without the Python project (no pyproject.toml yet), the scenarios
# that need it skip and the rest use the plain Python base image.
prepare_images() {
    mkdir -p "$IMAGES" "$BUILDAH_RUNROOT"
    build_pause_image
    import_image "$(pause_archive)" "$PAUSE_IMAGE"
    build_base_image
    if [[ -f $REPO_DIR/pyproject.toml ]]; then
        E2E_IMAGE=$(project_image_tag)
        E2E_PROJECT_IMAGE=1
        build_project_image "$E2E_IMAGE"
        import_image "$(project_archive "$E2E_IMAGE")" "docker.io/library/$E2E_IMAGE"
        build_pgbouncer_image
        E2E_PGBOUNCER_IMAGE=$(pgbouncer_image_name)
        import_image "$(pgbouncer_archive)" "docker.io/library/$E2E_PGBOUNCER_IMAGE"
    else
        log "no pyproject.toml yet: scenarios use the base image; the baton scenario will skip"
        local archive=$IMAGES/$(base_image_name | sed 's#.*/##; s#:#-#').tar
        [[ -s $archive ]] || push_oci_archive "$(base_image_name)" "$archive" "docker.io/library/baton-e2e-python:$(base_key)"
        E2E_IMAGE=baton-e2e-python:$(base_key)
        E2E_PROJECT_IMAGE=0
        import_image "$archive" "docker.io/library/$E2E_IMAGE"
    fi
}
