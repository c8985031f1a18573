"""The ``pyxis`` backend: a run on Slurm with Pyxis and enroot, as NVIDIA's ``run.sub`` starts
its benchmark (issue 23).

What runs where:

- the image is built where the workflow runs, by ``docker build``, exactly as the docker
  backend builds it (same stamp ``results/<b>/<s>/image.json``, same staleness rules: this
  class is the docker backend with another name);
- rules/image.smk's ``import_sqsh`` then imports that image with
  ``enroot import --output build/<b>/<s>/image.sqsh dockerd://<image id>`` (to a temporary
  name, renamed after: enroot refuses an output that exists) and writes the stamp
  ``results/<b>/<s>/image.sqsh.json`` (the squashfs file, the image id it came from, enroot's
  argv);
- each run is its own Slurm job (``--profile profiles/slurm``; the executor asks for the
  system's ``slurm.nodes`` and runs the job's snakemake in the batch step, see
  scripts/run/cluster.py ``job_resources``), and the runner starts the run as run.sub's
  per-run step: one ``srun`` of ``--ntasks-per-node`` tasks (the system's GPUs for an
  implementation with ``launch: per_gpu``, else 1) on ``--nodes`` nodes, in a container of the
  squashfs file, with run.sub's PYXIS_DEFAULTS (scripts/run/pyxis.py has the command lines and
  what Pyxis and enroot accept).

Where this differs from run.sub's step, and why:

- the image is given on the step itself (``--container-image=<sqsh>``), with no
  ``--container-name``: Pyxis makes the step's container and removes it when the step ends,
  so no container of an older image can outlive it (run.sub makes a named one in a first step
  and removes every container at the start and end of its job);
- ``--container-env`` names the rendezvous variables (run.sub's) and every variable of the
  run's environment; their values are in srun's own environment, as run.sub exports them
  before its srun, so the host's values win over the image's ``ENV``;
- the command is ``bash -c`` of the run's command, after the translation that mlperf-common's
  ``slurm2pytorch`` makes (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE from the task's
  Slurm variables, OMP_NUM_THREADS=1 where a node has several tasks and none is set), so an
  image without mlperf-common runs too; srun itself starts one task per GPU, with no rank
  launcher;
- ``--time`` is the run's timeout rounded up to minutes plus one, a backstop behind the
  runner's own timeout; ``--mpi`` is not given (RetinaNet's step has none; Llama 2 70B LoRA's
  ``pmix`` would be the cluster's default MPI type).

Pyxis, enroot and Slurm do not exist where this is tested: tests/test_pyxis_backend.py checks
the command lines against the published run.sub's text only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scripts.core import hashing
from scripts.run import cluster
from scripts.run import pyxis as commands
from scripts.run.backends.base import Launch, kill_group
from scripts.run.backends.container import STOP_GRACE_S, container_env
from scripts.run.backends.docker import DockerBackend
from scripts.run.backends.errors import ContainerError
from scripts.run.backends.implementation_runs import check_run_data, datestamp, launch_record
from scripts.run.backends.stamp import check_same_image, read_stamp

if TYPE_CHECKING:  # types only: not imported at run time
    from scripts.run.spec import RunSpec

PYXIS = "pyxis"
SLURM_PROFILE = "profiles/slurm"
RUN_SUB_MASTER_PORT = 29500  # run.sub: : "${MASTER_PORT:=29500}"
# what slurm2pytorch derives from a task's Slurm variables, in bash, before the run's command
SLURM2PYTORCH = (
    'export RANK="${SLURM_PROCID:-0}" LOCAL_RANK="${SLURM_LOCALID:-0}" '
    'WORLD_SIZE="${SLURM_NTASKS:-1}" LOCAL_WORLD_SIZE="${SLURM_NTASKS_PER_NODE:-1}"; '
    'if [ "${SLURM_NTASKS_PER_NODE:-1}" -gt 1 ] && [ -z "${OMP_NUM_THREADS-}" ]; then '
    "export OMP_NUM_THREADS=1; fi; "
)


def sqsh_stamp(benchmark: str, system: str) -> str:
    """The squashfs image's stamp, a file target of rules/image.smk import_sqsh."""
    return f"results/{benchmark}/{system}/image.sqsh.json"


def sqsh_path(benchmark: str, system: str) -> str:
    """Where import_sqsh writes the squashfs file (relative to the working directory)."""
    return f"build/{benchmark}/{system}/image.sqsh"


def sqsh_stamp_of(image_stamp_path: Path) -> Path:
    """The squashfs stamp beside an image stamp (the runner is given the image stamp)."""
    return image_stamp_path.with_name("image.sqsh.json")


def read_sqsh_stamp(stamp: Path, image_id: str) -> dict[str, Any]:
    """The squashfs stamp of the image ``image_id``; ContainerError when it is missing,
    unreadable, of another image, or its file is gone."""
    try:
        record = json.loads(stamp.read_text())
    except (OSError, ValueError) as exc:
        raise ContainerError(f"cannot read the squashfs stamp {stamp}: {exc}") from None
    if record.get("image_id") != image_id:
        raise ContainerError(
            f"{stamp} was imported from image {record.get('image_id')}, but the image is now "
            f"{image_id}; delete {stamp} to import it again"
        )
    if not Path(record.get("sqsh", "")).is_file():
        raise ContainerError(f"{stamp}: its squashfs file {record.get('sqsh')!r} is gone")
    return record


def time_limit_min(timeout_s: float | None) -> int | None:
    """srun's ``--time`` in minutes: after the runner's own timeout, as a backstop."""
    return None if timeout_s is None else math.ceil(timeout_s / 60) + 1


def run_mounts(opts: Mapping[str, Any]) -> list[commands.Mount]:
    """The dataset and each of the implementation's data folders read-only, the prepared data
    read-only where there is some, and the run's folder writable; host paths absolute. No
    dataset (``host_dataset_dir`` "": dataset: none) mounts none."""
    mounts: list[commands.Mount] = []
    if opts.get("host_dataset_dir"):
        dataset = Path(opts["host_dataset_dir"]).resolve()
        mounts.append((dataset, opts["dataset_mount"], "ro"))
        for mount in opts.get("data_mounts") or []:
            mounts.append((dataset / mount["path"], mount["mount"], "ro"))
    prepared = opts.get("host_prepared_dir")
    if prepared and opts.get("prepared_mount"):
        mounts.append((Path(prepared).resolve(), opts["prepared_mount"], "ro"))
    mounts.append((Path(opts["host_run_dir"]).resolve(), opts["run_mount"], "rw"))
    return mounts


def step_command(spec: RunSpec) -> list[str]:
    """``bash -c`` of the run's command; one task per GPU gets slurm2pytorch's variables
    first."""
    if spec.container.get("launch") == "per_gpu":
        return ["bash", "-c", SLURM2PYTORCH + spec.command]
    return ["bash", "-c", spec.command]


def env_names(env: Mapping[str, str]) -> list[str]:
    """``--container-env``: run.sub's rendezvous variables, then the run's, sorted."""
    rest = sorted(n for n in env if n not in commands.RENDEZVOUS_ENV)
    return [*commands.RENDEZVOUS_ENV, *rest]


def step_argv(spec: RunSpec, sqsh: str | Path, env: Mapping[str, str]) -> list[str]:
    """The run's srun step (scripts/run/pyxis.py srun_argv) for ``spec``, in the squashfs file
    ``sqsh``, passing the names of ``env`` into the container."""
    opts = spec.container
    per_gpu = opts.get("launch") == "per_gpu"
    return commands.srun_argv(
        ntasks_per_node=max(spec.gpus, 1) if per_gpu else 1,
        nodes=spec.nodes,
        image=str(Path(sqsh).resolve()),
        name=None,
        mounts=run_mounts(opts),
        workdir=opts["workdir"],
        env_names=env_names(env),
        time_min=time_limit_min(spec.timeout_s),
        command=step_command(spec),
    )


def step_env(spec: RunSpec, host: Mapping[str, str]) -> dict[str, str]:
    """The run's environment (the benchmark's, the system's, the seed) with the rendezvous
    variables: MASTER_ADDR the job's first node (run.sub: ``scontrol show hostnames`` | head
    -n1), MASTER_PORT the run's, else one per job (two jobs may share a node)."""
    env = container_env(spec)
    if "MASTER_ADDR" not in env:
        nodelist = host.get("SLURM_JOB_NODELIST") or ""
        hosts = cluster.hostnames(nodelist) if nodelist else []
        env["MASTER_ADDR"] = hosts[0] if hosts else "127.0.0.1"
    if "MASTER_PORT" not in env:
        job = host.get("SLURM_JOB_ID")
        env["MASTER_PORT"] = str(cluster.master_port(job) if job else RUN_SUB_MASTER_PORT)
    # one for every task of the step, as run.sub sets it once (implementation_runs.datestamp)
    env.setdefault("DATESTAMP", datestamp())
    return env


class PyxisBackend(DockerBackend):
    """The docker backend's image and data steps; runs as a Pyxis step of the run's Slurm job."""

    name = PYXIS
    cli = "docker"  # the image is built, and prepared data made, by docker where snakemake runs
    store = "the Docker engine"
    start_failures = ()  # srun's own failures cannot be told from the task's by status

    def config_problems(self, config: Mapping[str, Any], system: str) -> list[str]:
        """The docker backend's, and a working folder for ``--container-workdir``."""
        problems = super().config_problems(config, system)
        for bname in config["campaign"]["benchmarks"]:
            impl = config["benchmarks"].get(bname, {}).get("implementation") or {}
            if self.name not in (impl.get("backends") or [self.name]):
                continue
            cont = impl.get("container") or {}
            if cont and not cont.get("workdir"):
                problems.append(
                    f"systems.{system} has backend 'pyxis' but benchmarks.{bname}.implementation"
                    ".container has no workdir, which srun's --container-workdir needs; add one"
                )
        return problems

    def run_inputs(self, config: Mapping[str, Any], benchmark: str, system: str) -> dict[str, str]:
        """The docker backend's (the image stamp, the prepared data) and the squashfs stamp."""
        return {
            **super().run_inputs(config, benchmark, system),
            "sqsh": sqsh_stamp(benchmark, system),
        }

    def check_run(self, spec: RunSpec, image_stamp: Path | None, run_dir: Path) -> None:
        """In a Slurm job, with the image's squashfs file, never beside runs of another image,
        and with the data the implementation expects."""
        if not os.environ.get("SLURM_JOB_ID"):
            raise ContainerError(
                f"{spec.system} has backend pyxis, whose runs are srun steps of the run's Slurm "
                "job, but this runner is in none (no SLURM_JOB_ID): run the campaign with "
                f"--profile {SLURM_PROFILE}"
            )
        if image_stamp is None:
            raise ContainerError("the pyxis backend needs the image stamp (--image-stamp)")
        image_id = read_stamp(image_stamp)["image_id"]
        read_sqsh_stamp(sqsh_stamp_of(image_stamp), image_id)
        check_same_image(spec, run_dir, image_id)
        check_run_data(spec)  # expected-mounts.csv, unless the run is synthetic

    def launch(
        self,
        spec: RunSpec,
        command: str,
        extra_env: Mapping[str, str],
        *,
        image_stamp: Path | None = None,
        user: str | None = None,
        gpu_devices: Sequence[str] = (),
    ) -> Launch:
        """The run's srun step. ``command``, ``extra_env``, ``user`` and ``gpu_devices`` do not
        apply: srun starts the tasks on every node of the job, Slurm gives them their GPUs,
        and Pyxis runs them as root in the container (run.sub's --container-remap-root)."""
        assert image_stamp is not None
        record = read_stamp(image_stamp)
        sqsh = read_sqsh_stamp(sqsh_stamp_of(image_stamp), record["image_id"])
        Path(spec.container["host_run_dir"]).mkdir(parents=True, exist_ok=True)
        env = step_env(spec, os.environ)
        argv = step_argv(spec, sqsh["sqsh"], env)
        grace = float(spec.container.get("stop_grace_s", STOP_GRACE_S))

        def kill(proc: subprocess.Popen[bytes], grace_s: float) -> None:
            # srun passes SIGTERM on to every task, and Pyxis removes the step's container
            kill_group(proc, grace_s=min(grace_s, grace))

        image = {k: record.get(k) for k in ("tag", "image_id", "inputs_sha256", "context_sha256")}
        image["sqsh"] = sqsh["sqsh"]
        return Launch(
            argv,
            {**os.environ, **env},
            kill,
            record={
                "backend": self.name,
                "image": image,
                "pyxis_argv": argv,
                "image_id": image["image_id"],
                "launch": launch_record(spec, "srun"),  # srun starts the step's tasks
            },
            fingerprinted=("image_id",),
            shown_as=f"srun: {shlex.join(argv)}",
            engine="srun",
            start_failures=self.start_failures,
        )

    # -- the squashfs file (rules/image.smk import_sqsh) ------------------------------------------

    def import_sqsh(self, image_stamp_path: Path, sqsh: Path, stamp: Path) -> dict[str, Any]:
        """``enroot import`` of the stamp's image (by id) to ``sqsh``, through a temporary name
        (enroot refuses an existing output), then the stamp."""
        record = read_stamp(image_stamp_path)
        sqsh.parent.mkdir(parents=True, exist_ok=True)
        partial = sqsh.with_name(sqsh.name + ".partial")
        partial.unlink(missing_ok=True)
        argv = commands.enroot_import_argv(record["image_id"], partial.resolve())
        print("enroot: " + shlex.join(argv), flush=True)
        rc = subprocess.call(argv, stdin=subprocess.DEVNULL)
        if rc != 0 or not partial.is_file():
            partial.unlink(missing_ok=True)
            raise ContainerError(f"enroot import of {record['image_id']} failed (exit {rc})")
        os.replace(partial, sqsh)
        out = {
            "benchmark": record.get("benchmark"),
            "system": record.get("system"),
            "sqsh": str(sqsh.resolve()),
            "size_bytes": sqsh.stat().st_size,
            "image_id": record["image_id"],
            "tag": record.get("tag"),
            "enroot_argv": argv,
            "imported_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        hashing.write_json(stamp, out, sort_keys=True)
        return out

    def main(self, argv: Sequence[str] | None = None) -> int:
        """The docker backend's build and prepare, and import-sqsh."""
        args = list(sys.argv[1:] if argv is None else argv)
        if args[:1] != ["import-sqsh"]:
            return super().main(args)
        p = argparse.ArgumentParser(
            prog="python -m scripts.run.backends.pyxis import-sqsh",
            description="enroot import of a built image to a squashfs file, and its stamp",
        )
        p.add_argument("--image-stamp", type=Path, required=True, help="the image.json")
        p.add_argument("--sqsh", type=Path, required=True, help="the squashfs file to write")
        p.add_argument("--stamp", type=Path, required=True, help="the image.sqsh.json to write")
        opts = p.parse_args(args[1:])
        try:
            self.import_sqsh(opts.image_stamp, opts.sqsh, opts.stamp)
        except (ContainerError, commands.PyxisError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0


BACKEND = PyxisBackend()
main = BACKEND.main

if __name__ == "__main__":
    raise SystemExit(main())
