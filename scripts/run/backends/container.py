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
(:meth:`ContainerBackend.run_argv`). The runner (``scripts/run/run_training.py``) streams the
container's output into the run's log as it comes, and the :class:`~scripts.run.backends.base.
Launch` of a run stops and removes the container on a timeout, on a signal and when Snakemake
dies, and removes a container left behind by a runner that was itself killed.

Why the engine's CLI and not a Python SDK: the recipe this workflow replaces *is* a
``docker build`` and a ``docker run`` command line, and users check and rerun those by hand. With
the CLI the exact argument lists are built by two methods (``build_argv``, ``run_argv``),
unit-tested, recorded in ``image.json`` and ``run.json``, and can be pasted into a shell; the
container's output goes straight to the log file through the CLI, so nothing has to pump a log
stream; and the workflow needs no extra Python package, only the engine's command.
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
from scripts.core.records import differences
from scripts.run.backends.base import Launch, kill_group
from scripts.run.backends.errors import BackendError
from scripts.run.backends.image import (
    ImageSpec,
    container_config,
    image_spec,
    image_tag,
    stage_context,
)

if TYPE_CHECKING:  # types only: not imported at run time
    from scripts.run.spec import RunSpec

WORKFLOW_DIR = Path(__file__).resolve().parents[3]
# labels on everything the workflow creates, so a test (or a person) can find leftovers
LABEL = "org.mlperf-workflow"
STOP_GRACE_S = 10.0
# Run inside an image by any Python from 3.6 on (NVIDIA's v0.6 images have 3.6): versions of
# the packages named in argv, as JSON.
IMAGE_PROBE = r"""
import json, platform, sys
try:
    from importlib import metadata
    def version(name):
        try:
            return metadata.version(name)
        except Exception:
            return None
except ImportError:
    import pkg_resources
    def version(name):
        try:
            return pkg_resources.get_distribution(name).version
        except Exception:
            return None
print(json.dumps({"python": platform.python_version(),
                  "packages": {n: version(n) for n in sys.argv[1:]}}))
"""
IMAGE_PACKAGES = ("torch", "numpy", "sacrebleu", "mlperf-logging", "mlperf-compliance", "apex")


class ContainerError(BackendError):
    """A container engine step failed; the message says which and what to do."""


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


def caller_user() -> str:
    return f"{os.getuid()}:{os.getgid()}"


def image_stamp(benchmark: str, system: str) -> str:
    """The image's stamp, relative to the working directory: a file target of build_image."""
    return f"results/{benchmark}/{system}/image.json"


def prepared_dir(config: Mapping[str, Any], benchmark: str, system: str) -> str:
    """Where the implementation's one-time data preparation writes, for one system's image."""
    return f"{config['data_dir'].rstrip('/')}/{benchmark}/prepared/{system}"


def _bind(source: Path, target: str, readonly: bool) -> str:
    spec = f"type=bind,source={source.resolve()},target={target}"
    return spec + (",readonly" if readonly else "")


def read_stamp(stamp: Path) -> dict[str, Any]:
    """The image.json of a built image; ContainerError when it cannot be used."""
    try:
        record = formats.read_json(stamp, "image.json")
    except (OSError, ValueError) as exc:
        raise ContainerError(f"cannot read the image stamp {stamp}: {exc}") from None
    except formats.NewerFormat as exc:
        raise ContainerError(str(exc)) from None
    if not record.get("image_id"):
        raise ContainerError(f"{stamp} records no image id; delete it to rebuild the image")
    return record


def check_same_image(spec: RunSpec, run_dir: Path, image_id: str) -> None:
    """Refuse to run when finished runs of the same system used another image: they would
    no longer be comparable (the workflow's comparability check names what to do)."""
    for meta_path in sorted(run_dir.parent.glob("run_*/run.json")):
        if meta_path.parent == run_dir:
            continue
        try:
            other = (formats.read_json(meta_path, "run.json").get("image") or {}).get("image_id")
        except (OSError, ValueError):
            continue
        if other and other != image_id:
            raise ContainerError(
                f"{meta_path.parent.name} ran in image {other}, but the image of "
                f"{spec.benchmark}/{spec.system} is now {image_id}; runs of two images are not "
                "comparable. Archive the old runs (python -m scripts archive "
                f"{run_dir.parent}) or rebuild the old image"
            )


class ContainerBackend:
    """A container engine with docker's command line; ``cli`` is its command and its
    backend's name. Subclasses give :meth:`gpu_flags` and may add :meth:`user_flags`."""

    name: str = ""
    cli: str = ""
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
        """The image's identity (what it is built from) and how containers run."""
        spec = image_spec(config, benchmark, system, WORKFLOW_DIR)
        options = run_options(config, benchmark, system)
        implementation = config["benchmarks"][benchmark]["implementation"]
        return {
            "container": {
                "image_inputs_sha256": spec.inputs_sha256,
                "image": spec.inputs,
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

    # -- the engine -------------------------------------------------------------------------------

    def gpu_flags(self, gpus: Any, gpu_count: int, assigned: Sequence[str] = ()) -> list[str]:
        """The engine's flags that give a container the GPUs of the system config."""
        raise NotImplementedError

    def user_flags(self) -> list[str]:
        """Flags the engine needs so that ``--user`` is the caller's uid on the host too."""
        return []

    def _json(self, args: Sequence[str], timeout: float = 60) -> Any:
        out = subprocess.run(
            [self.cli, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if out.returncode != 0:
            raise ContainerError(f"`{self.cli} {' '.join(args)}` failed: {out.stderr.strip()}")
        return json.loads(out.stdout)

    def engine_version(self) -> dict[str, Any]:
        data = self._json(["version", "--format", "{{json .}}"])
        return {
            "client": (data.get("Client") or {}).get("Version"),
            "server": (data.get("Server") or {}).get("Version"),
        }

    def image_exists(self, image: str) -> bool:
        out = subprocess.run(
            [self.cli, "image", "inspect", "--format", "{{.Id}}", image],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        return out.returncode == 0

    def _quietly(self, args: Sequence[str], timeout: float) -> None:
        """An engine command whose failure is not an error (the container may be gone
        already); an engine that does not answer is reported, not raised, so the caller can
        go on cleaning up."""
        try:
            subprocess.run(
                [self.cli, *args], capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            print(f"{self.cli} {' '.join(args)}: {exc}", file=sys.stderr, flush=True)

    def stop_container(self, name: str, grace_s: float) -> None:
        """SIGTERM the container's init, SIGKILL after ``grace_s``, then remove it. Quiet when
        the container is already gone."""
        self._quietly(["stop", "--time", str(int(max(grace_s, 0))), name], grace_s + 60)
        self.remove_container(name)

    def remove_container(self, name: str) -> None:
        self._quietly(["rm", "--force", name], 60)

    def containers_named(self, name: str) -> list[str]:
        out = subprocess.run(
            [self.cli, "ps", "--all", "--quiet", "--filter", f"name=^/?{name}$"],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        return out.stdout.split()

    # -- building ---------------------------------------------------------------------------------

    def build_argv(self, spec: ImageSpec, context: Path, iidfile: Path) -> list[str]:
        """The exact ``<engine> build`` command line (recorded in the stamp)."""
        argv = [self.cli, "build", "--file", str(context / spec.dockerfile), "--tag", spec.tag]
        argv += ["--iidfile", str(iidfile)]
        argv += ["--network", spec.build_network] if spec.build_network != "default" else []
        for key in sorted(spec.build_args):
            argv += ["--build-arg", f"{key}={spec.build_args[key]}"]
        argv += ["--label", f"{LABEL}.benchmark={spec.benchmark}"]
        argv += ["--label", f"{LABEL}.system={spec.system}"]
        argv += ["--label", f"{LABEL}.inputs={spec.inputs_sha256}"]
        argv.append(str(context))
        return argv

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
        if record.get("inputs_sha256") != spec.inputs_sha256:
            diffs = differences(record.get("inputs", {}), spec.inputs)
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

    def run_argv(
        self,
        options: Mapping[str, Any],
        *,
        image: str,
        name: str,
        command: str,
        env: Mapping[str, str],
        dataset_dir: Path,
        run_dir: Path | None,
        prepared_dir: Path | None = None,
        prepared_writable: bool = False,
        user: str | None = None,
        gpu_devices: Sequence[str] = (),
    ) -> list[str]:
        """The exact ``<engine> run`` command line of one container.

        The dataset (and prepared data) are mounted read-only, the run directory writable; the
        container runs as ``user`` (default: the caller), is removed when it ends, and gets no
        network unless the benchmark asks for one. ``--privileged`` is never used. With the
        system's ``gpus: auto`` the container gets exactly ``gpu_devices``, the GPUs assigned
        to the run (scripts/run/gpus.py), so concurrent runs never share one.
        """
        argv = [self.cli, "run", "--rm", "--name", name, "--label", f"{LABEL}.container={name}"]
        if options.get("init", True):
            argv.append("--init")  # a real PID 1: signals reach the trainer, zombies are reaped
        argv += ["--network", options.get("network") or "none"]
        argv += [*self.user_flags(), "--user", user or caller_user()]
        if options.get("workdir"):
            argv += ["--workdir", options["workdir"]]
        argv += ["--mount", _bind(dataset_dir, options["dataset_mount"], readonly=True)]
        if run_dir is not None:
            argv += ["--mount", _bind(run_dir, options["run_mount"], readonly=False)]
        if prepared_dir is not None and options.get("prepared_mount"):
            argv += [
                "--mount",
                _bind(prepared_dir, options["prepared_mount"], readonly=not prepared_writable),
            ]
        argv += self.gpu_flags(
            options.get("gpus", "auto"), int(options.get("gpu_count") or 0), gpu_devices
        )
        argv += _limits(options)
        for key in sorted(env):
            argv += ["--env", f"{key}={env[key]}"]
        argv += [image, "/bin/bash", "-c", command]
        assert "--privileged" not in argv
        return argv

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
        argv = self.run_argv(
            opts,
            image=record["image_id"],
            name=name,
            command=spec.command,
            env=container_env(spec),
            dataset_dir=Path(opts["host_dataset_dir"]),
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
            record=self._run_record(argv, image),
            fingerprinted=("image_id",),  # the exact image makes runs comparable
            shown_as=f"{self.cli}: {shlex.join(argv)}",
            engine=self.cli,
            start_failures=self.start_failures,
        )

    def _run_record(self, argv: list[str], image: dict[str, Any]) -> dict[str, Any]:
        """What run.json records of a container run: the backend, the image and the engine's
        command line (``docker_argv``, ``podman_argv``)."""
        return {
            "backend": self.name,
            "image": image,
            f"{self.cli}_argv": argv,
            "image_id": image["image_id"],
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

    def image_software(self, image_id: str, python: str) -> dict[str, Any]:
        """Python and package versions inside ``image_id`` (a throw-away container, no
        network)."""
        argv = [self.cli, "run", "--rm", "--network", "none", "--entrypoint", python, image_id]
        argv += ["-c", IMAGE_PROBE, *IMAGE_PACKAGES]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"cannot read the image's versions: {out.stderr.strip()[-500:]}")
        data: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return data

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


def _limits(options: Mapping[str, Any]) -> list[str]:
    """IPC, shared memory, ulimits, CPU and memory limits, devices and security options."""
    argv: list[str] = []
    if options.get("ipc"):
        argv += ["--ipc", options["ipc"]]
    if options.get("shm_size"):
        argv += ["--shm-size", str(options["shm_size"])]
    for key in sorted(options.get("ulimits") or {}):
        argv += ["--ulimit", f"{key}={options['ulimits'][key]}"]
    if options.get("cpus"):
        argv += ["--cpus", str(options["cpus"])]
    if options.get("memory"):
        argv += ["--memory", str(options["memory"])]
    for device in options.get("devices") or []:
        argv += ["--device", device]
    for opt in options.get("security_opt") or []:
        argv += ["--security-opt", opt]
    return argv
