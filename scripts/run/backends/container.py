"""Container backends: image builds as file targets, training runs in containers.

One implementation for every engine whose command line is docker's (``docker``, ``podman``):
a subclass names the engine's CLI and says how it differs (GPU flags, user namespaces, the
exit statuses of an engine that could not start a container).

An image is built once per (benchmark, system) from what :func:`scripts.run.backends.image.
image_spec` says it is made of; the stamp ``results/<benchmark>/<system>/image.json`` records
the image id, the tag, the build args, a hash of the build context (Dockerfile included) and
``inputs_sha256``. The workflow compares ``inputs_sha256`` with the current config on every
invocation: the image is rebuilt when it differs (or when the image is gone from the engine),
and never otherwise (:meth:`ContainerBackend.stale_reason`).

Runs use ``<engine> run`` with the dataset mounted read-only, the run directory writable, the
caller's uid:gid, ``--network none`` unless the benchmark says otherwise, the system's GPU, IPC,
shared memory, ulimit, CPU and memory settings and environment, and never ``--privileged``
(:meth:`scripts.run.backends.engine.ContainerEngine.run_argv`). The runner
(``scripts/run/runner.py``) streams the container's output into the run's log as it comes, and
the :class:`~scripts.run.backends.base.Launch` of a run stops and removes the container on a
timeout, on a signal and when Snakemake dies, and removes a container left behind by a runner
that was itself killed.

The engine's command lines and queries (and why its CLI, not a Python SDK):
:mod:`scripts.run.backends.engine`; the image's stamp: :mod:`scripts.run.backends.stamp`. This
module holds what the workflow asks a container backend (:class:`ContainerBackend`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scripts.core import formats, hashing
from scripts.run.backends.base import Launch, kill_group
from scripts.run.backends.engine import ContainerEngine
from scripts.run.backends.errors import BackendError, ContainerError
from scripts.run.backends.image import (
    ImageSpec,
    container_config,
    image_spec,
    image_tag,
    recorded_identity,
    stage_context,
    stamp_differences,
    stamp_identity,
)
from scripts.run.backends.implementation_runs import (
    LAUNCHER,
    LAUNCHER_MOUNT,
    check_run_data,
    launch_record,
    per_gpu_command,
)
from scripts.run.backends.stamp import check_same_image, image_stamp, read_stamp

if TYPE_CHECKING:  # types only: not imported at run time
    from scripts.run.spec import RunSpec

WORKFLOW_DIR = Path(__file__).resolve().parents[3]
STOP_GRACE_S = 10.0
# the implementation's container keys that say how a run sees its data and starts its ranks
LATER_RUN_KEYS = ("launch", "data_mounts", "expected_mounts")


def run_options(config: Mapping[str, Any], benchmark: str, system: str) -> dict[str, Any]:
    """How (benchmark, system) runs in a container: the benchmark's mounts, working folder and
    network with the system's GPU, IPC, memory and CPU settings. Plain data for the RunSpec."""
    cont = container_config(config, benchmark)
    sys_ = config["systems"][system]
    sc = sys_.get("container") or {}
    prepare = cont.get("prepare")
    return {
        "tag": image_tag(benchmark, system, cont),
        "python": cont.get("python", "python3"),
        "workdir": cont.get("workdir"),
        "dataset_mount": cont.get("dataset_mount", "/data"),
        "run_mount": cont.get("run_mount", "/results"),
        "prepared_mount": prepare["mount"] if prepare else None,
        "network": cont.get("network", "none"),
        "gpus": sc.get("gpus", "auto"),
        "gpu_count": sys_.get("gpus", 0),
        "ipc": sc.get("ipc"),
        "shm_size": sc.get("shm_size"),
        "ulimits": dict(sc.get("ulimits") or {}),
        "cpus": sc.get("cpus"),
        "memory": sc.get("memory"),
        "devices": list(sc.get("devices") or []),
        "security_opt": list(sc.get("security_opt") or []),
        "init": sc.get("init", True),
        "stop_grace_s": sc.get("stop_grace_s", STOP_GRACE_S),
        # keys of today's implementations (issue 23), only where set: the fingerprint of a
        # campaign made before them is unchanged
        **{k: cont[k] for k in LATER_RUN_KEYS if cont.get(k) not in (None, [], "once")},
    }


def container_env(spec: RunSpec) -> dict[str, str]:
    """The environment given to the container: the benchmark's and system's variables and the
    seed. Not OMP_NUM_THREADS: inside an image its own settings (or the implementation's
    launcher) decide, as they do when its run scripts start it; give it in env if wanted. Not
    CUDA_VISIBLE_DEVICES: the container gets its GPUs from the engine and numbers them from 0."""
    env = dict(spec.env)
    env["MLPERF_WORKFLOW_SEED"] = str(spec.seed)
    return env


def container_name(benchmark: str, system: str, run: int | str, run_dir: Path) -> str:
    """Deterministic per run and workflow folder, so a leftover of a killed runner is found."""
    digest = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:8]
    return f"mlperf-{benchmark}-{system}-run{run}-{digest}"


def prepared_dir(config: Mapping[str, Any], benchmark: str, system: str) -> str:
    """Where the implementation's one-time data preparation writes, for one system's image."""
    return f"{config['data_dir'].rstrip('/')}/{benchmark}/prepared/{system}"


class ContainerBackend(ContainerEngine):
    """The backend of a container engine with docker's command line
    (:class:`~scripts.run.backends.engine.ContainerEngine`); ``cli`` is its command and its
    backend's name. Subclasses give :meth:`gpu_flags` and may add :meth:`user_flags`."""

    name: str = ""
    trains = True
    imports = False
    # where images live, as the message about a vanished image names it
    store: str = ""
    # exit statuses of the engine's own failures to start a container
    start_failures: tuple[int, ...] = (125,)

    # -- identity and options for the fingerprint ---------------------------------------------

    def can_run(self, implementation: Mapping[str, Any]) -> bool:
        return bool(implementation.get("container"))

    def config_problems(self, config: Mapping[str, Any], system: str) -> list[str]:
        """A campaign benchmark meant for this system whose implementation has no container
        section (how to build and run its image)."""
        problems = []
        for bname in config["campaign"]["benchmarks"]:
            impl = config["benchmarks"].get(bname, {}).get("implementation")
            if impl is None or self.name not in (impl.get("backends") or [self.name]):
                continue  # not meant to run on this system
            if not impl.get("container"):
                problems.append(
                    f"systems.{system} has backend '{self.name}' but benchmarks.{bname}."
                    "implementation has no container section (how to build and run its "
                    "image); add one, or leave this system out of campaign.systems"
                )
        return problems

    def fingerprint_record(
        self, config: Mapping[str, Any], benchmark: str, system: str
    ) -> dict[str, Any]:
        """The image's identity (what it is built from: its stamp's inputs while the stamp is
        current, so an image built before INPUTS_VERSION 2 keeps its old identity) and how
        containers run."""
        spec = image_spec(config, benchmark, system, WORKFLOW_DIR)
        inputs, inputs_sha256 = recorded_identity(spec, Path(image_stamp(benchmark, system)))
        options = run_options(config, benchmark, system)
        implementation = config["benchmarks"][benchmark]["implementation"]
        return {
            "container": {
                "image_inputs_sha256": inputs_sha256,
                "image": inputs,
                "topology": config["systems"][system].get("topology"),
                "run": {k: v for k, v in options.items() if k != "stop_grace_s"},
                "prepare": implementation["container"].get("prepare"),
                "fail_patterns": implementation.get("fail_patterns", []),
            }
        }

    def system_record(self, system: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def run_setup(
        self,
        config: Mapping[str, Any],
        benchmark: str,
        system: str,
        *,
        python: str,
        dataset_dir: str,
        run_dir: str,
        prepared_dir: str | None,
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The command runs inside the container: its python and the mount points."""
        container = run_options(config, benchmark, system)
        container["host_dataset_dir"] = dataset_dir
        container["host_run_dir"] = run_dir
        container["host_prepared_dir"] = prepared_dir
        if container.get("expected_mounts"):  # in the image's build context, as built
            context = Path("build") / benchmark / system / "context"
            container["host_expected_mounts"] = str(context / container["expected_mounts"])
        paths = {
            "python": container["python"],
            "dataset_dir": container["dataset_mount"],
            "run_dir": container["run_mount"],
        }
        return container, paths

    # -- extra rule inputs ----------------------------------------------------------------------

    def has_image(self) -> bool:
        return True

    @property
    def module(self) -> str:
        """The module whose command line builds and uses this engine's images."""
        return f"scripts.run.backends.{self.name}"

    def needs_prepare(self, config: Mapping[str, Any], benchmark: str) -> bool:
        cont = config["benchmarks"][benchmark].get("implementation", {}).get("container") or {}
        return bool(cont.get("prepare"))

    def run_inputs(self, config: Mapping[str, Any], benchmark: str, system: str) -> dict[str, str]:
        """The image stamp, and the prepared data when the implementation prepares it."""
        inputs = {"image": image_stamp(benchmark, system)}
        if self.needs_prepare(config, benchmark):
            inputs["prepared"] = prepared_dir(config, benchmark, system)
        return inputs

    def runner_args(self, benchmark: str, system: str) -> list[str]:
        return ["--image-stamp", image_stamp(benchmark, system)]

    def environment_inputs(self, benchmark: str, system: str) -> dict[str, str]:
        """The image: its software is the environment, captured again when it changes."""
        return {"image": image_stamp(benchmark, system)}

    def environment_args(self, config: Mapping[str, Any], benchmark: str, system: str) -> list[str]:
        cont = config["benchmarks"][benchmark].get("implementation", {}).get("container") or {}
        python = cont.get("python", "python3")
        return ["--image-stamp", image_stamp(benchmark, system), "--image-python", python]

    # -- building ---------------------------------------------------------------------------------

    def build(self, spec: ImageSpec, stamp: Path, context: Path) -> dict[str, Any]:
        """Stage the context, build it (output streamed to stdout), write the stamp; return
        what the stamp holds."""
        stage_context(spec, context)
        context_sha = hashing.tree_sha256(context)
        iidfile = context.parent / "image.iid"
        iidfile.unlink(missing_ok=True)
        argv = self.build_argv(spec, context, iidfile)
        print("build: " + shlex.join(argv), flush=True)
        t0 = time.monotonic()
        rc = subprocess.call(argv, stdin=subprocess.DEVNULL)
        if rc != 0:
            raise ContainerError(
                f"{self.cli} build of {spec.tag} failed (exit {rc}); its output is above"
            )
        image_id = iidfile.read_text().strip()
        record = {
            "benchmark": spec.benchmark,
            "system": spec.system,
            "tag": spec.tag,
            "image_id": image_id,
            "build_args": spec.build_args,
            "dockerfile": spec.dockerfile,
            "dockerfile_sha256": hashing.file_sha256(context / spec.dockerfile),
            "context_sha256": context_sha,
            "generated": sorted(spec.generated),
            "inputs": spec.inputs,
            "inputs_sha256": spec.inputs_sha256,
            f"{self.cli}_build_argv": argv,
            "engine": self.engine_version(),
            "built_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "build_s": round(time.monotonic() - t0, 2),
        }
        record = formats.stamped("image.json", record)  # what the stamp holds is returned
        hashing.write_json(stamp, record, sort_keys=True)
        print(f"build: {spec.tag} is {image_id} ({record['build_s']} s)", flush=True)
        return record

    def stale_reason(self, stamp: Path, spec: ImageSpec, check_engine: bool = True) -> str | None:
        """Why an existing stamp no longer describes the image to use, or None if it does."""
        try:
            record = formats.read_json(stamp, "image.json")  # a newer one: NewerFormat
        except (OSError, ValueError):
            return "it cannot be read"
        if stamp_identity(record, spec) is None:
            diffs = stamp_differences(record, spec)
            return "what the image is built from changed: " + "; ".join(diffs[:5] or ["inputs"])
        if check_engine:
            try:
                present = self.image_exists(record.get("image_id", ""))
            except (OSError, subprocess.TimeoutExpired):
                return None  # no engine to ask; the build or run step reports it
            if not present:
                return f"its image {record.get('image_id')} is no longer in {self.store}"
        return None

    # -- running ----------------------------------------------------------------------------------

    def check_run(self, spec: RunSpec, image_stamp: Path | None, run_dir: Path) -> None:
        """A container run needs its image's stamp, runs on one node, and never next to
        finished runs of another image."""
        if image_stamp is None:
            raise ContainerError(f"the {self.name} backend needs the image stamp (--image-stamp)")
        if spec.nodes > 1:
            raise ContainerError(
                f"{spec.system} has backend {self.name} and slurm.nodes {spec.nodes}: the "
                f"{self.name} backend runs on one node; set slurm.nodes to 1"
            )
        check_same_image(spec, run_dir, read_stamp(image_stamp)["image_id"])
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
        """``<engine> run`` of the run's command in the system's image (by id, from the
        stamp), with the GPUs assigned to the run (:mod:`scripts.run.gpus`). ``command`` and
        ``extra_env`` (a multi-node launch, CUDA_VISIBLE_DEVICES) do not apply: a container
        runs on one node and gets its GPUs from the engine."""
        assert image_stamp is not None
        opts = spec.container
        record = read_stamp(image_stamp)
        run_dir = Path(opts["host_run_dir"])
        run_dir.mkdir(parents=True, exist_ok=True)
        prepared = opts.get("host_prepared_dir")
        name = container_name(spec.benchmark, spec.system, spec.run, run_dir)
        command, launcher = spec.command, []
        if opts.get("launch") == "per_gpu":
            command = per_gpu_command(spec, name)
            launcher = [(LAUNCHER, LAUNCHER_MOUNT)]
        argv = self.run_argv(
            opts,
            image=record["image_id"],
            name=name,
            command=command,
            read_only=launcher,
            env=container_env(spec),
            dataset_dir=Path(opts["host_dataset_dir"]) if opts.get("host_dataset_dir") else None,
            run_dir=run_dir,
            prepared_dir=Path(prepared) if prepared else None,
            user=user,
            gpu_devices=gpu_devices,
        )
        grace = float(opts.get("stop_grace_s", STOP_GRACE_S))

        def kill(proc: subprocess.Popen[bytes], grace_s: float) -> None:
            # the container first (the engine's CLI does not take it down when it is killed)
            self.stop_container(name, min(grace_s, grace))
            kill_group(proc, grace_s=2.0)

        # a container of this name is a leftover of a runner that was killed: it must not keep
        # training next to this attempt
        self.remove_container(name)
        image = {k: record.get(k) for k in ("tag", "image_id", "inputs_sha256", "context_sha256")}
        return Launch(
            argv,
            dict(os.environ),
            kill,
            lambda: self.remove_container(name),
            record=self._run_record(argv, image, spec),
            fingerprinted=("image_id",),  # the exact image makes runs comparable
            shown_as=f"{self.cli}: {shlex.join(argv)}",
            engine=self.cli,
            start_failures=self.start_failures,
        )

    def _run_record(self, argv: list[str], image: dict[str, Any], spec: RunSpec) -> dict[str, Any]:
        """What run.json records of a container run: the backend, the image, the engine's
        command line (``docker_argv``, ``podman_argv``) and which way its tasks started
        (``launch``: by the rank launcher, one per GPU, or by the engine, once)."""
        by = "rank_launcher" if spec.container.get("launch") == "per_gpu" else self.cli
        return {
            "backend": self.name,
            "image": image,
            f"{self.cli}_argv": argv,
            "image_id": image["image_id"],
            "launch": launch_record(spec, by),
        }

    def prepare_data(
        self,
        options: Mapping[str, Any],
        stamp: Path,
        command: str,
        env: Mapping[str, str],
        dataset_dir: Path,
        output: Path,
        name: str,
    ) -> int:
        """Run the implementation's one-time data preparation (e.g. NVIDIA's
        preprocess_data.py) in its image, writing into ``output`` (mounted writable); the
        output streams to stdout."""
        image = read_stamp(stamp)["image_id"]
        output.mkdir(parents=True, exist_ok=True)
        argv = self.run_argv(
            options,
            image=image,
            name=name,
            command=command,
            env=env,
            dataset_dir=dataset_dir,
            run_dir=None,
            prepared_dir=output,
            prepared_writable=True,
        )
        print("prepare: " + shlex.join(argv), flush=True)
        self.remove_container(name)
        try:
            return subprocess.call(argv, stdin=subprocess.DEVNULL)
        finally:
            self.remove_container(name)

    # -- probing the environment ------------------------------------------------------------------

    def probe(self, image_stamp: Path | None, python: str) -> dict[str, Any] | None:
        """The image's software (read in a container of it), tag and id."""
        if image_stamp is None:
            return None
        stamp = formats.read_json(image_stamp, "image.json")
        software = self.image_software(stamp["image_id"], python)
        return {
            "image": {k: stamp.get(k) for k in ("tag", "image_id", "inputs_sha256")},
            "python": software["python"],
            "packages": software["packages"],
            "image_id": stamp["image_id"],
        }

    # -- entry point (the build_image and prepare_data rules of rules/image.smk) -----------------

    def main(self, argv: Sequence[str] | None = None) -> int:
        p = argparse.ArgumentParser(
            prog=f"python -m scripts {self.name}",
            description=f"{self.cli} steps of the workflow: build an image, prepare data in a "
            "container.",
        )
        sub = p.add_subparsers(dest="cmd", required=True)
        b = sub.add_parser("build", help=f"assemble the build context, {self.cli} build, stamp")
        b.add_argument("--spec", required=True, help="the ImageSpec as JSON")
        b.add_argument("--context", type=Path, required=True, help="where to assemble it")
        b.add_argument("--stamp", type=Path, required=True, help="the image.json to write")
        r = sub.add_parser("prepare", help="run the data preparation command in the image")
        r.add_argument("--options", required=True, help="the run options as JSON")
        r.add_argument("--stamp", type=Path, required=True)
        r.add_argument("--command", required=True)
        r.add_argument("--env-json", default="{}")
        r.add_argument("--dataset-dir", type=Path, required=True)
        r.add_argument("--output", type=Path, required=True)
        r.add_argument("--name", required=True)
        args = p.parse_args(argv)
        try:
            if args.cmd == "build":
                self.build(ImageSpec.from_json(args.spec), args.stamp, args.context)
                return 0
            rc = self.prepare_data(
                json.loads(args.options),
                args.stamp,
                args.command,
                json.loads(args.env_json),
                args.dataset_dir,
                args.output,
                args.name,
            )
        except (BackendError, subprocess.CalledProcessError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        if rc != 0:
            print(f"error: the preparation command exited with status {rc}", file=sys.stderr)
            return 1
        return 0
