#!/usr/bin/env bash
# Start a private Slurm (munge, slurmctld, slurmd) on this machine for tests/test_slurm.py.
#
#   .ci/slurm-up.sh      (idempotent: stops a previous instance and wipes its state first)
#   .ci/slurm-down.sh    (stops it)
#
# Partition "debug" (the default) is the node "c0": 2 CPUs and 2 fake GPUs (gres.conf maps
# each to an existing character device, /dev/null and /dev/zero), so --gpus=1 jobs get
# CUDA_VISIBLE_DEVICES 0 and 1. Partition "multi" is two more nodes, "n1" and "n2" (1 CPU and
# 1 fake GPU each), served by two more slurmd on this same host (ports 17001 and 17002): a real
# 2-node allocation for the multi-node launch, although both "nodes" are this machine.
# There is no accounting daemon: the workflow's Slurm profile polls with squeue, which sees a
# finished job for MinJobAge (300 s). Everything lives under $SLURM_CI_DIR (default
# /tmp/mlperf-ci-slurm); the config is also linked at /etc/slurm/slurm.conf because the
# executor's job step drops SLURM_CONF before its inner srun.
set -euo pipefail

D=${SLURM_CI_DIR:-/tmp/mlperf-ci-slurm}
NODES="c0 n1 n2"

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null ||
    ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    echo "slurm-up: installing slurmctld slurmd slurm-client munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

"$(dirname "$0")/slurm-down.sh" >/dev/null 2>&1 || true
rm -rf "$D"
mkdir -p "$D/state" "$D/log" "$D/munge"
for node in $NODES; do
    mkdir -p "$D/spool/$node"
done
chmod 700 "$D/munge"

dd if=/dev/urandom of="$D/munge/munge.key" bs=1 count=1024 status=none
chmod 400 "$D/munge/munge.key"
munged --force --socket="$D/munge/munge.socket" --key-file="$D/munge/munge.key" \
    --pid-file="$D/munge/munged.pid" --log-file="$D/log/munged.log" \
    --seed-file="$D/munge/munged.seed"

cat >"$D/slurm.conf" <<END_OF_CONF
ClusterName=mlperfci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool/%n
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.%n.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
MinJobAge=300
KillWait=10
MailProg=/bin/true
GresTypes=gpu
NodeName=c0 NodeHostname=localhost NodeAddr=127.0.0.1 Port=6818 CPUs=2 RealMemory=4000 Gres=gpu:2 State=UNKNOWN
NodeName=n1 NodeHostname=localhost NodeAddr=127.0.0.1 Port=17001 CPUs=1 RealMemory=2000 Gres=gpu:1 State=UNKNOWN
NodeName=n2 NodeHostname=localhost NodeAddr=127.0.0.1 Port=17002 CPUs=1 RealMemory=2000 Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=c0 Default=YES MaxTime=INFINITE State=UP
PartitionName=multi Nodes=n1,n2 MaxTime=INFINITE State=UP
END_OF_CONF

cat >"$D/gres.conf" <<END_OF_CONF
NodeName=c0 Name=gpu File=/dev/null,/dev/zero
NodeName=n1 Name=gpu File=/dev/null
NodeName=n2 Name=gpu File=/dev/zero
END_OF_CONF

mkdir -p /etc/slurm
for f in slurm.conf gres.conf; do
    if [ -e "/etc/slurm/$f" ] && [ ! -L "/etc/slurm/$f" ]; then
        echo "slurm-up: /etc/slurm/$f exists and is not our link; keeping it as $f.orig" >&2
        mv "/etc/slurm/$f" "/etc/slurm/$f.orig"
    fi
    ln -sfn "$D/$f" "/etc/slurm/$f"
done

export SLURM_CONF="$D/slurm.conf"
slurmctld -f "$SLURM_CONF"
for node in $NODES; do
    slurmd -f "$SLURM_CONF" -N "$node"
done

want="c0=idle n1=idle n2=idle "
states=""
for _ in $(seq 1 60); do
    states=$(sinfo -h -N -o '%N=%T' 2>/dev/null | sort -u | tr '\n' ' ' || true)
    if [ "$states" = "$want" ]; then
        echo "slurm-up: nodes idle: c0 (partition debug: 2 CPUs, 2 fake GPUs)," \
            "n1 and n2 (partition multi: 1 CPU, 1 fake GPU each); config $SLURM_CONF"
        exit 0
    fi
    sleep 0.5
done
echo "slurm-up: the nodes did not become idle (${states:-no answer from slurmctld}); logs:" >&2
tail -n 20 "$D"/log/*.log >&2 || true
exit 1
