#!/usr/bin/env bash
# Make podman usable for the tests, with its own image store, and put the local base image in it.
#
#   eval "$(.ci/podman-up.sh)"     # prints the export lines below; logs go to stderr
#
# Prints:
#   export CONTAINERS_CONF=<run dir>/containers.conf
#   export CONTAINERS_STORAGE_CONF=<run dir>/storage.conf
#   export MLPERF_CI_BASE_IMAGE=<name:tag of a Debian base with python3 and pip>
#
# - Installs Debian's podman, runc and catatonit (podman's --init) when they are missing.
# - Podman has no daemon: nothing is started, so nothing needs stopping (.ci/run's EXIT trap
#   has no podman part). Idempotent: a second call only checks and prints.
# - containers.conf (as checked on this kind of machine, ../shared/CI-NOTES.md): the runtime
#   runc (crun refuses cgroups in hybrid mode), default ulimits nofile=1024:1024 and
#   nproc=4096:4096 (runc cannot raise the rlimits it inherits here: "error setting rlimit"),
#   the cgroupfs cgroup manager and file events (there is no systemd or journald).
# - The image store (MLPERF_PODMAN_DATA) is the tests' own and outlives this script, so the base
#   image and the test images' layers are made once per machine.
# - The base image, without a registry: `docker save | podman load` of the one .ci/docker-up.sh
#   made, when a Docker engine has it (about 5 s); else the same debootstrap'ed Debian
#   imported with `podman import` (about a minute).
set -euo pipefail

DATA=${MLPERF_PODMAN_DATA:-/var/lib/mlperf-ci-podman}
RUN=${MLPERF_PODMAN_RUN:-/run/mlperf-ci-podman}
BASE_IMAGE=${MLPERF_CI_BASE_IMAGE:-mlperf-ci/debian-python:bookworm}
export CONTAINERS_CONF="$RUN/containers.conf"
export CONTAINERS_STORAGE_CONF="$RUN/storage.conf"

log() { echo "podman-up: $*" >&2; }

install_missing() {
    local missing=()
    command -v podman >/dev/null || missing+=(podman)
    command -v runc >/dev/null || missing+=(runc)
    [ -x /usr/libexec/podman/catatonit ] || missing+=(catatonit)
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 || {
            apt-get update -qq >&2
            apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
        }
    fi
}

write_config() {
    mkdir -p "$DATA" "$RUN"
    # overlay needs a store that is not itself on overlayfs (then vfs, which is slower)
    local driver=overlay
    [ "$(stat -f -c %T "$DATA")" = overlayfs ] && driver=vfs
    cat >"$CONTAINERS_CONF" <<EOF
# written by .ci/podman-up.sh
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
    cat >"$CONTAINERS_STORAGE_CONF" <<EOF
# written by .ci/podman-up.sh
[storage]
driver = "$driver"
graphroot = "$DATA/storage"
runroot = "$RUN/storage"
EOF
}

engine_works() {
    local out
    out=$(timeout 60 podman info --format '{{.Host.OCIRuntime.Name}}' 2>&1) || {
        echo "$out" >&2
        log "podman info failed"
        return 1
    }
    log "podman $(podman version --format '{{.Client.Version}}'), runtime $out"
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

import_rootfs() {
    local suite rootfs mirror
    command -v debootstrap >/dev/null || {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            debootstrap >&2; }
    suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
    mirror=$(apt_mirror)
    rootfs=$(mktemp -d /var/tmp/mlperf-ci-rootfs.XXXXXX)
    log "building $BASE_IMAGE: debootstrap $suite from $mirror (about a minute)"
    debootstrap --variant=minbase --include=python3,python3-pip,ca-certificates \
        "$suite" "$rootfs" "$mirror" >"$RUN/debootstrap.log" 2>&1 || {
        tail -n 30 "$RUN/debootstrap.log" >&2; rm -rf "$rootfs"; return 1; }
    tar -C "$rootfs" --exclude='./var/cache/apt/archives/*.deb' \
        --exclude='./var/lib/apt/lists/*_*' -c . |
        podman import \
            -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            -c 'ENV LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >&2
    rm -rf "$rootfs"
}

base_image() {
    if podman image exists "$BASE_IMAGE"; then
        log "base image $BASE_IMAGE is present"
        return 0
    fi
    local t0=$SECONDS
    if command -v docker >/dev/null && timeout 10 docker image inspect "$BASE_IMAGE" \
        >/dev/null 2>&1; then
        log "loading $BASE_IMAGE from the Docker engine (docker save | podman load)"
        docker save "$BASE_IMAGE" | podman load >&2
    else
        import_rootfs
    fi
    log "base image $BASE_IMAGE made in $((SECONDS - t0)) s"
}

smoke_test() {
    # what the tests rely on: a run as root with --init, no network, the caller's uid
    podman run --rm --init --network none --user "$(id -u):$(id -g)" "$BASE_IMAGE" \
        /bin/sh -c 'test "$(id -u)" = '"$(id -u)" >&2 || {
        log "a podman run of $BASE_IMAGE failed"; return 1; }
}

install_missing
write_config
engine_works
base_image
smoke_test
echo "export CONTAINERS_CONF=$CONTAINERS_CONF"
echo "export CONTAINERS_STORAGE_CONF=$CONTAINERS_STORAGE_CONF"
echo "export MLPERF_CI_BASE_IMAGE=$BASE_IMAGE"
