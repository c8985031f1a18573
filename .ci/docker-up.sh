#!/usr/bin/env bash
# Start a private Docker engine for the tests, and build the local base image they use.
#
#   eval "$(.ci/docker-up.sh)"     # prints the export lines below; logs go to stderr
#   .ci/docker-down.sh             # stops the engine (its image store is kept)
#
# Prints:
#   export DOCKER_HOST=unix://<run dir>/docker.sock
#   export MLPERF_CI_BASE_IMAGE=<name:tag of a Debian base with python3 and pip>
#
# - Installs Debian's docker.io and debootstrap when they are missing (no registry is needed).
# - Starts dockerd with its own data root, socket and pid file, without iptables or a bridge
#   (containers get --network none or the host network; the builds here need no network).
#   If an engine already answers on that socket, it is reused.
# - The image store (MLPERF_DOCKER_DATA) outlives the engine, so the base image and the layers
#   of the test images are built once per machine, not once per CI run.
# - The base image is a debootstrap'ed Debian (the release of this machine, from the mirror that
#   its apt sources name) with python3 and pip, imported with `docker import`: no registry.
set -euo pipefail

DATA=${MLPERF_DOCKER_DATA:-/var/lib/mlperf-ci-docker}
RUN=${MLPERF_DOCKER_RUN:-/run/mlperf-ci-docker}  # short: a unix socket path has at most 107 bytes
BASE_IMAGE=${MLPERF_CI_BASE_IMAGE:-mlperf-ci/debian-python:bookworm}
SOCK="$RUN/docker.sock"
export DOCKER_HOST="unix://$SOCK"

log() { echo "docker-up: $*" >&2; }

install_missing() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >&2
    fi
}

engine_answers() { timeout 10 docker version >/dev/null 2>&1; }

start_engine() {
    mkdir -p "$DATA" "$RUN"
    # overlay2 needs a data root that is not itself on overlayfs (then vfs, which is slower)
    local driver=overlay2
    [ "$(stat -f -c %T "$DATA")" = overlayfs ] && driver=vfs
    log "starting dockerd (data root $DATA, storage driver $driver)"
    # setsid: the engine must not die with the shell that started it (CI steps come and go)
    setsid dockerd --data-root "$DATA" --exec-root "$RUN/exec" -H "unix://$SOCK" \
        --pidfile "$RUN/dockerd.pid" --storage-driver "$driver" \
        --iptables=false --ip-masq=false --bridge=none \
        >"$RUN/dockerd.log" 2>&1 </dev/null &
    for _ in $(seq 1 150); do
        engine_answers && return 0
        sleep 0.2
    done
    tail -n 30 "$RUN/dockerd.log" >&2
    log "dockerd did not answer on $SOCK within 30 s"
    return 1
}

apt_mirror() {
    # the first Debian mirror this machine's apt sources name (deb822 or one-line format)
    local m
    m=$(grep -hoE '^URIs:[[:space:]]*http[^[:space:]]*debian/?' /etc/apt/sources.list.d/*.sources \
        2>/dev/null | head -n 1 | sed -E 's/^URIs:[[:space:]]*//') || true
    if [ -z "$m" ]; then
        m=$(grep -hoE '^deb[[:space:]]+http[^[:space:]]*debian/?' /etc/apt/sources.list \
            /etc/apt/sources.list.d/*.list 2>/dev/null | head -n 1 | awk '{print $2}') || true
    fi
    echo "${m:-http://deb.debian.org/debian}"
}

build_base_image() {
    if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        log "base image $BASE_IMAGE is present"
        return 0
    fi
    local suite rootfs mirror
    suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
    mirror=$(apt_mirror)
    rootfs=$(mktemp -d /var/tmp/mlperf-ci-rootfs.XXXXXX)
    log "building $BASE_IMAGE: debootstrap $suite from $mirror (about a minute)"
    debootstrap --variant=minbase --include=python3,python3-pip,ca-certificates \
        "$suite" "$rootfs" "$mirror" >"$RUN/debootstrap.log" 2>&1 || {
        tail -n 30 "$RUN/debootstrap.log" >&2; rm -rf "$rootfs"; return 1; }
    tar -C "$rootfs" --exclude='./var/cache/apt/archives/*.deb' \
        --exclude='./var/lib/apt/lists/*_*' -c . |
        docker import \
            -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            -c 'ENV LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >&2
    rm -rf "$rootfs"
}

install_missing
if engine_answers; then
    log "reusing the engine on $SOCK"
else
    start_engine
fi
build_base_image
echo "export DOCKER_HOST=$DOCKER_HOST"
echo "export MLPERF_CI_BASE_IMAGE=$BASE_IMAGE"
