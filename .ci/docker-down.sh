#!/usr/bin/env bash
# Stop the private Docker engine that .ci/docker-up.sh started (by its pid file). Its image
# store is kept, so the next start reuses the base image and the cached layers.
set -uo pipefail
RUN=${MLPERF_DOCKER_RUN:-/run/mlperf-ci-docker}
PIDFILE="$RUN/dockerd.pid"
[ -f "$PIDFILE" ] || exit 0
pid=$(cat "$PIDFILE")
if kill -0 "$pid" 2>/dev/null; then
    echo "docker-down: stopping dockerd (pid $pid)" >&2
    kill -TERM "$pid"
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
fi
rm -f "$PIDFILE"
