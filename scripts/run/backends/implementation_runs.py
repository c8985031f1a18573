"""What a run of today's published MLPerf implementations (NVIDIA's and AMD's v5.x submission
folders) needs from a container backend beyond its image: its data folders checked against the
implementation's expected-mounts.csv before each run, as NVIDIA's run.sub has mountcheck do, and
one task per GPU where the implementation expects srun to start it once per GPU
(``launch: per_gpu``), and which way a run's tasks were started, for its run.json.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scripts.run.backends.errors import ContainerError

if TYPE_CHECKING:  # types only: not imported at run time
    from scripts.run.spec import RunSpec

# where the rank launcher (scripts/run/rank_launcher.py) is mounted, read-only, in a container
# whose implementation has ``launch: per_gpu``
LAUNCHER = Path(__file__).resolve().parents[1] / "rank_launcher.py"
LAUNCHER_MOUNT = "/mlperf-workflow/rank_launcher.py"
# the line a synthetic run's log has in place of the data check
# run.sub's DATESTAMP: ``date +'%y%m%d%H%M%S%N'``
DATESTAMP_FORMAT = "%y%m%d%H%M%S%N"
SYNTHETIC_SKIP = (
    "runner: synthetic run (USE_SYNTHETIC_DATA=1): the data mounts are not checked against "
    "expected-mounts.csv (the implementation reads no data)"
)


def per_gpu_command(spec: RunSpec, name: str) -> str:
    """The command of a ``launch: per_gpu`` run: the rank launcher starts one task of the run's
    command per GPU of the system (one task without GPUs) with the variables srun gives a
    task; rank 0's output is the container's, the other ranks' go to ``ranks/`` in the run's
    folder. MASTER_PORT: the implementation's env, else run.sub's 29500. DATESTAMP: the run's,
    one for all its ranks, as run.sub sets it once per job (run_and_time.sh would otherwise draw
    one per rank, to the nanosecond, and name each rank's files differently)."""
    opts = spec.container
    words = [opts["python"], LAUNCHER_MOUNT, "--ntasks", str(max(spec.gpus, 1))]
    words += ["--job-id", name, "--rank-log-dir", f"{opts['run_mount']}/ranks"]
    words += ["--master-addr", "127.0.0.1"]
    launch = shlex.join(words) + ' --master-port "${MASTER_PORT:-29500}"'
    datestamp = f'export DATESTAMP="${{DATESTAMP:-$(date +{DATESTAMP_FORMAT})}}"'
    return f"{datestamp}; exec {launch} -- /bin/bash -c {shlex.quote(spec.command)}"


def launch_record(spec: RunSpec, by: str) -> dict[str, Any]:
    """run.json's ``launch``: which way the run's tasks were started, as the issue asks ("record
    which way a run was launched"). ``mode`` is the implementation's ``launch``: ``per_gpu``, one
    task per GPU of each node with the variables srun gives a task (NVIDIA's run.sub), or
    ``once``, one task that starts its own ranks (AMD's torchrun) or is the whole run (every
    other implementation). ``by`` is what started the tasks: ``rank_launcher`` (the workflow's,
    in the container), ``srun`` (the Slurm step of a pyxis run) or the container engine
    (``docker``, ``podman``: the command itself, once). ``tasks_per_node`` and ``tasks`` count
    them (``tasks``: on all the run's nodes). A run of the local backend and an import have
    none."""
    per_gpu = spec.container.get("launch") == "per_gpu"
    per_node = max(spec.gpus, 1) if per_gpu else 1
    return {
        "mode": "per_gpu" if per_gpu else "once",
        "by": by,
        "tasks_per_node": per_node,
        "tasks": per_node * max(spec.nodes, 1),
    }


def datestamp(now_ns: int | None = None) -> str:
    """run.sub's ``DATESTAMP``, ``date +'%y%m%d%H%M%S%N'``: the time to the nanosecond."""
    ns = time.time_ns() if now_ns is None else now_ns
    seconds, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%y%m%d%H%M%S", time.localtime(seconds)) + f"{nanos:09d}"


def check_run_data(spec: RunSpec) -> None:
    """Before a run: its data folders against expected-mounts.csv where the implementation has
    one (:func:`check_data_mounts`), except for a synthetic run, whose implementation reads no
    data (NVIDIA's config_mounts.sh mounts none with USE_SYNTHETIC_DATA=1 and run.sub sets
    VERIFY_MOUNTS=0): the run's log says that the check was skipped."""
    if not spec.container.get("expected_mounts"):
        return
    if spec.synthetic:
        print(SYNTHETIC_SKIP, flush=True)
        return
    check_data_mounts(spec.container)


def check_data_mounts(opts: Mapping[str, Any]) -> None:
    """The run's data folders against the implementation's expected-mounts.csv, as NVIDIA's
    mountcheck checks them before a run: file counts and bytes per key and path."""
    from scripts.data import mountcheck  # lazy: only an implementation with expected mounts

    csv = Path(opts["host_expected_mounts"])
    dataset = Path(opts["host_dataset_dir"])
    mounts = {m["key"]: dataset / m["path"] for m in opts.get("data_mounts") or []}
    try:
        expected = [e for e in mountcheck.read_expected(csv) if e.key in mounts]
    except (OSError, mountcheck.MountCheckError) as exc:
        raise ContainerError(f"cannot check the data mounts: {exc}") from exc
    problems = mountcheck.check(expected, mounts)
    if problems:
        raise ContainerError(
            f"the data does not match {csv} ({len(problems)} problem"
            f"{'s' if len(problems) != 1 else ''}): " + "; ".join(problems)
        )
