"""Slurm: a system's ``slurm:`` config as Snakemake job resources, the job a run executes in,
and the launch of a multi-node run across its allocation.

The workflow does not schedule anything itself: with ``--profile profiles/slurm`` Snakemake's
Slurm executor plugin (snakemake-executor-plugin-slurm) submits every job of the configured
``cluster_rules`` (the training runs and the environment captures) as one Slurm job, with the
resources :func:`job_resources` derives from the system's config; the other rules run where
snakemake runs.

A system with ``slurm.nodes > 1`` gets one allocation of that many nodes. The job's own
snakemake then runs in the batch step on the allocation's first node (the plugin's ``mpi``
mode: no ``srun`` around it), and the runner starts the training command on every node with
one ``srun`` per node, all at once, as NVIDIA's v0.6 ``run.sub`` does
(:func:`multinode_command`). Each node's command gets its rank through the environment:
``MLPERF_NNODES``, ``MLPERF_NODE_RANK``, ``MLPERF_MASTER_ADDR``, ``MLPERF_MASTER_PORT``, and
``MULTI_NODE`` in the exact form NVIDIA's ``run_and_time.sh`` appends to its launcher
(`` --nnodes=N --node_rank=R --master_addr=IP --master_port=P``). Node 0's output is the run's
``mlperf.log``; node R's is ``node_R.log`` beside it.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

# the names a multi-node run's command (or a container backend) passes on to every node
MULTINODE_ENV_VARS = (
    "MLPERF_NNODES",
    "MLPERF_NODE_RANK",
    "MLPERF_MASTER_ADDR",
    "MLPERF_MASTER_PORT",
    "MULTI_NODE",
)
BASE_PORT = 4242  # run.sub: PORT=$((4242 + RANDOM%1000))
# a run's Slurm time limit when none is configured: every attempt may take its timeout, plus the
# runner's kill grace, plus this for the job's own snakemake and the runner
RUNTIME_SLACK_MIN = 5
ENVIRONMENT_RUNTIME_MIN = 10


# the Snakemake resources job_resources() returns (rules declare each of them)
RESOURCE_NAMES = (
    "slurm_partition",
    "slurm_account",
    "constraint",
    "qos",
    "mem_mb",
    "runtime",
    "cpus_per_task",
    "slurm_extra",
    "nodes",
    "gpu",
    "gres",
    "mpi",
    "tasks",
    "tasks_per_gpu",
)


class ClusterError(RuntimeError):
    """A run cannot be launched as configured; the message says why and what to change."""


def default_runtime_min(timeout_s: float | None, retries: int, grace_s: float) -> int | None:
    """A Slurm time limit (minutes) that outlasts the runner's own timeouts, so the runner (which
    keeps the failed log) stops a hung run before Slurm kills the job; None without a timeout."""
    if timeout_s is None:
        return None
    return math.ceil((retries + 1) * (timeout_s + grace_s + 5) / 60) + RUNTIME_SLACK_MIN


def job_resources(
    system: Mapping[str, Any],
    *,
    timeout_s: float | None,
    grace_s: float,
    job: str = "train",
) -> dict[str, Any]:
    """Snakemake resources of one job of ``system`` (None values are left out by Snakemake; a
    ``mem_mb`` or ``runtime`` of 0 makes the executor leave ``--mem`` or ``--time`` out).

    ``job`` is ``train`` (one training run) or ``environment`` (the environment capture: one
    node of the same partition and constraint, with the run's GPUs so that it sees them). The
    names are those of snakemake-executor-plugin-slurm: ``slurm_partition``, ``slurm_account``,
    ``nodes``, ``cpus_per_task``, ``mem_mb``, ``runtime`` (minutes), ``constraint``, ``qos``,
    ``slurm_extra``, ``gpu`` (``--gpus``), ``gres`` (``--gres``), and for a multi-node or pyxis run
    ``mpi`` (the job's snakemake runs in the batch step, which launches the nodes itself) and
    ``tasks`` (one per node). ``gpu`` is also the resource ``--resources gpu=N`` caps locally.
    """
    slurm = system.get("slurm") or {}
    gpus = int(system.get("gpus", 0))
    nodes = int(slurm.get("nodes", 1)) if job == "train" else 1
    extra = [slurm.get("extra") or ""]
    if job == "train" and slurm.get("exclusive", True):
        extra.insert(0, "--exclusive")
    if job == "train":
        runtime = slurm.get("runtime_min") or default_runtime_min(
            timeout_s, int(system.get("retries", 0)), grace_s
        )
        cpus = slurm.get("cpus_per_task") or system.get("threads", 1)
    else:
        runtime = ENVIRONMENT_RUNTIME_MIN
        cpus = 1
    # several nodes, or a pyxis run (its srun step is a step of this job: the job's snakemake
    # must not hold the node's resources in a step of its own), run in the batch step
    multi = nodes > 1 or (job == "train" and system.get("backend") == "pyxis")
    return {
        "slurm_partition": slurm.get("partition"),
        "slurm_account": slurm.get("account"),
        "constraint": slurm.get("constraint"),
        "qos": slurm.get("qos"),
        # Snakemake wants numbers for these two: 0 leaves --mem and --time to the cluster
        "mem_mb": slurm.get("mem_mb") or 0,
        "runtime": runtime or 0,
        "cpus_per_task": int(cpus),
        "slurm_extra": " ".join(e for e in extra if e) or None,
        "nodes": nodes,
        # one node: --gpus=N for the job and its step; several: --gres=gpu:N is per node
        "gpu": gpus if not multi else None,
        "gres": f"gpu:{gpus}" if multi and gpus else None,
        "mpi": "srun" if multi else None,
        "tasks": nodes if multi else None,
        # stops the plugin from adding --ntasks-per-gpu=<tasks> to a multi-node GPU job
        "tasks_per_gpu": 0 if multi and gpus else None,
    }


def check_slurm_config(name: str, system: Mapping[str, Any]) -> list[str]:
    """Problems of a system's ``slurm`` mapping that the schema cannot see."""
    problems: list[str] = []
    extra = (system.get("slurm") or {}).get("extra") or ""
    if extra:
        try:  # lazy: the Slurm plugin is needed only for a system with slurm.extra
            from snakemake_executor_plugin_slurm.validation import get_forbidden_slurm_options
        except ImportError:  # the plugin checks again at submission
            return problems
        for pattern, option in get_forbidden_slurm_options().items():
            if re.search(pattern, extra):
                problems.append(
                    f"systems.{name}.slurm.extra: {extra!r} sets the {option}, which the "
                    "executor sets itself; use the matching key of systems."
                    f"{name}.slurm (partition, account, nodes, cpus_per_task, mem_mb, "
                    "runtime_min, constraint, qos) or the system's gpus instead"
                )
    return problems


# ---------------------------------------------------------------------------------------------
# Inside a job


def slurm_job(env: Mapping[str, str]) -> dict[str, Any]:
    """The Slurm job a process runs in (all None outside Slurm).

    The executor's job step keeps only ``SLURM_JOB_ID`` in the environment of a multi-node
    job's snakemake; the node list then comes from ``squeue``."""
    job_id = env.get("SLURM_JOB_ID")
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    nnodes = env.get("SLURM_JOB_NUM_NODES") or env.get("SLURM_NNODES")
    if job_id and not nodelist:
        nodelist, nnodes = _squeue_nodes(job_id)
    return {
        "slurm_job_id": job_id,
        "slurm_job_nodelist": nodelist or None,
        "slurm_nnodes": int(nnodes) if nnodes else None,
    }


def _squeue_nodes(job_id: str) -> tuple[str | None, str | None]:
    try:
        out = subprocess.run(
            ["squeue", "-h", "-j", job_id, "-o", "%N|%D"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return None, None
    nodelist, _, nnodes = out.partition("|")
    return nodelist or None, nnodes or None


ACTIVE_JOB_STATES = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED"}


def job_state(job_id: str) -> str | None:
    """A Slurm job's state from squeue (``RUNNING``, ``COMPLETED``...), ``GONE`` when Slurm no
    longer knows it, None when squeue cannot be asked (no Slurm here)."""
    try:
        proc = subprocess.run(
            ["squeue", "-h", "-j", str(job_id), "-t", "all", "-o", "%T"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    state = proc.stdout.strip().splitlines()
    return state[0] if proc.returncode == 0 and state else "GONE"


def hostnames(nodelist: str) -> list[str]:
    """A Slurm node list (``n[1-2],c0``) expanded by ``scontrol show hostnames``."""
    try:
        out = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        raise ClusterError(f"cannot expand the Slurm node list {nodelist!r}: {exc}") from exc
    return [h for h in out.split() if h]


def master_addr() -> str:
    """This host's address, as run.sub finds it (``getent hosts `hostname```): the runner of a
    multi-node run executes on the allocation's first node, which is rank 0."""
    name = socket.gethostname()
    try:
        return socket.gethostbyname(name)
    except OSError:
        return name


def master_port(job_id: str | None) -> int:
    """A port for the rendezvous, different for jobs that might share a node."""
    try:
        return BASE_PORT + int(job_id or 0) % 1000
    except ValueError:
        return BASE_PORT


def node_log(run_dir: Path, rank: int) -> Path:
    """Where node ``rank`` (>= 1) of a multi-node run writes its output."""
    return run_dir / f"node_{rank}.log"


def srun_node_argv(
    command: str,
    host: str,
    rank: int,
    nnodes: int,
    *,
    cpus_per_task: int,
    gpus_per_node: int,
    addr: str,
    port: int,
) -> list[str]:
    """One node's launch: ``srun`` of one task on ``host`` running ``command`` with its rank.

    As in run.sub: ``srun --mem=0 -N 1 -n 1 -w $hostn``, plus the node's CPUs and GPUs of the
    allocation, so that the step gets them (Slurm 22.05 no longer passes the job's
    ``--cpus-per-task`` to steps)."""
    multi_node = f" --nnodes={nnodes} --node_rank={rank} --master_addr={addr} --master_port={port}"
    argv = [
        "srun",
        "--nodes=1",
        "--ntasks=1",
        f"--nodelist={host}",
        "--mem=0",
        f"--cpus-per-task={cpus_per_task}",
    ]
    if gpus_per_node:
        argv.append(f"--gres=gpu:{gpus_per_node}")
    argv += [
        "env",
        f"MLPERF_NNODES={nnodes}",
        f"MLPERF_NODE_RANK={rank}",
        f"MLPERF_MASTER_ADDR={addr}",
        f"MLPERF_MASTER_PORT={port}",
        f"MULTI_NODE={multi_node}",
        "/bin/bash",
        "-c",
        command,
    ]
    return argv


def multinode_command(
    command: str,
    hosts: Sequence[str],
    run_dir: Path,
    *,
    cpus_per_task: int,
    gpus_per_node: int,
    addr: str,
    port: int,
) -> str:
    """The command line that starts ``command`` on every host at once (one ``srun`` per node,
    as run.sub does) through :func:`supervise_nodes`: it waits for all of them and exits with
    the first failing node's status, stopping the others then (a distributed run whose peer
    died would hang).

    The supervisor is this file run as a script (it imports nothing outside the standard
    library, so it needs no PYTHONPATH), not a bash ``wait -n`` loop: bash loses the status of
    a node that exits in the same instant as another (seen as a spurious status 127)."""
    if len(hosts) < 2:
        raise ClusterError(f"a multi-node launch needs at least 2 hosts, got {list(hosts)}")
    plan = [
        {
            "argv": srun_node_argv(
                command,
                host,
                rank,
                len(hosts),
                cpus_per_task=cpus_per_task,
                gpus_per_node=gpus_per_node,
                addr=addr,
                port=port,
            ),
            "host": host,
            "log": None if rank == 0 else str(node_log(run_dir, rank)),
        }
        for rank, host in enumerate(hosts)
    ]
    return shlex.join(
        # -I: no script directory on sys.path, so nothing in scripts/ can shadow the stdlib
        [sys.executable, "-I", str(Path(__file__).resolve()), "launch", json.dumps(plan)]
    )


def supervise_nodes(plan: Sequence[Mapping[str, Any]], err: TextIO = sys.stderr) -> int:
    """Start every node's ``argv`` at once (node R's output to its ``log``, node 0's to ours),
    wait for all, and return 0 or the first failing node's status (128 + N for a signal N, as
    a shell reports it), terminating the nodes still running at the first failure.

    ``os.wait`` collects each child's status from the kernel exactly once, whatever order or
    instant they exit in."""
    running: dict[int, subprocess.Popen[bytes]] = {}
    for rank, node in enumerate(plan):
        print(f"launch: node {rank} of {len(plan)}: {node['host']}", file=err, flush=True)
        if node.get("log"):
            with open(node["log"], "wb") as out:
                proc = subprocess.Popen(node["argv"], stdout=out, stderr=subprocess.STDOUT)
        else:
            proc = subprocess.Popen(node["argv"])
        running[proc.pid] = proc
    status = 0
    while running:
        pid, wait_status = os.wait()
        proc = running.pop(pid, None)
        if proc is None:  # not one of ours (nothing else is started here)
            continue
        code = os.waitstatus_to_exitcode(wait_status)
        proc.returncode = code  # reaped here: Popen must not wait for it again
        code = 128 - code if code < 0 else code
        if code != 0 and status == 0:
            status = code
            message = f"launch: a node failed with status {code}; stopping the others"
            print(message, file=err, flush=True)
            for other in running:
                # os.kill, not Popen.terminate: that polls, and a poll reaps an exited node
                # whose status os.wait must still collect (a pid not yet collected is never
                # reused, so signalling it is safe)
                os.kill(other, signal.SIGTERM)
    return status


def _main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[0] != "launch":
        print("usage: cluster.py launch PLAN_JSON (see multinode_command)", file=sys.stderr)
        return 2
    return supervise_nodes(json.loads(argv[1]))


def launch_command(
    command: str,
    nodes: int,
    run_dir: Path,
    env: Mapping[str, str],
    *,
    cpus_per_task: int,
    gpus_per_node: int,
) -> tuple[str, dict[str, Any]]:
    """The command the runner executes for a run of ``nodes`` nodes, and what to record.

    One node: ``command`` itself. Several: the per-node launch script, which needs a Slurm
    allocation of exactly that many nodes (the workflow's Slurm profile makes one)."""
    job = slurm_job(env)
    if nodes <= 1:
        return command, {**job, "hosts": _job_hosts(job)}
    if not job["slurm_job_id"] or not job["slurm_job_nodelist"]:
        raise ClusterError(
            f"this system runs on {nodes} nodes (slurm.nodes), which needs a Slurm allocation: "
            "run the campaign with --profile profiles/slurm (see docs/slurm-and-gpus.md), or set "
            "slurm.nodes to 1"
        )
    hosts = hostnames(job["slurm_job_nodelist"])
    if len(hosts) != nodes:
        raise ClusterError(
            f"this system runs on {nodes} nodes but Slurm job {job['slurm_job_id']} has "
            f"{len(hosts)} ({job['slurm_job_nodelist']})"
        )
    script = multinode_command(
        command,
        hosts,
        run_dir,
        cpus_per_task=cpus_per_task,
        gpus_per_node=gpus_per_node,
        addr=master_addr(),
        port=master_port(job["slurm_job_id"]),
    )
    return script, {**job, "hosts": hosts}


def _job_hosts(job: Mapping[str, Any]) -> list[str]:
    if job["slurm_job_nodelist"]:
        try:
            return hostnames(job["slurm_job_nodelist"])
        except ClusterError:
            return [job["slurm_job_nodelist"]]
    return [socket.gethostname()]


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
