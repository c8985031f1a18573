#!/usr/bin/env bash
# Stop the single-node Slurm started by .ci/slurm-up.sh (by its pid files only).
set -uo pipefail

D=${SLURM_CI_DIR:-/tmp/mlperf-ci-slurm}

stop() {  # stop the daemon whose pid file is $1, waiting up to 10 s
    local pidfile=$1 pid
    [ -s "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    kill -9 "$pid" 2>/dev/null || true
}

for pidfile in "$D"/slurmd.*.pid; do
    stop "$pidfile"
done
stop "$D/slurmctld.pid"
stop "$D/munge/munged.pid"
# Unlink our /etc/slurm links (and restore what slurm-up moved aside): a slurm.conf naming a
# controller that is gone makes every snakemake start wait about 9 s, because the Slurm
# executor plugin runs `scontrol show config` (10 s timeout) when it is imported.
for f in slurm.conf gres.conf; do
    if [ -L "/etc/slurm/$f" ] && [ "$(readlink "/etc/slurm/$f")" = "$D/$f" ]; then
        rm -f "/etc/slurm/$f"
        [ -e "/etc/slurm/$f.orig" ] && mv "/etc/slurm/$f.orig" "/etc/slurm/$f"
    fi
done
echo "slurm-down: stopped"
