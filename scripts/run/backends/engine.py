"""An engine with docker's command line (``docker``, ``podman``): the exact argument lists the
workflow gives it (``<engine> build``, ``<engine> run``), what it asks the engine (its version,
whether an image exists, a container's name, an image's software) and how it stops and removes
a container. :class:`ContainerEngine` is the base of every container backend
(:mod:`scripts.run.backends.container`); a subclass names the engine's CLI and gives its GPU
flags (and may add user namespace flags).

Why the engine's CLI and not a Python SDK: the recipe this workflow replaces *is* a
``docker build`` and a ``docker run`` command line, and users check and rerun those by hand. With
the CLI the exact argument lists are built by two methods (``build_argv``, ``run_argv``),
unit-tested, recorded in ``image.json`` and ``run.json``, and can be pasted into a shell; the
container's output goes straight to the log file through the CLI, so nothing has to pump a log
stream; and the workflow needs no extra Python package, only the engine's command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scripts.run.backends.errors import ContainerError

if TYPE_CHECKING:  # types only: not imported at run time
    from scripts.run.backends.image import ImageSpec

# labels on everything the workflow creates, so a test (or a person) can find leftovers
LABEL = "org.mlperf-workflow"
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


def caller_user() -> str:
    return f"{os.getuid()}:{os.getgid()}"


def _bind(source: Path, target: str, readonly: bool) -> str:
    spec = f"type=bind,source={source.resolve()},target={target}"
    return spec + (",readonly" if readonly else "")


class ContainerEngine:
    """An engine with docker's command line; ``cli`` is its command. Subclasses give
    :meth:`gpu_flags` and may add :meth:`user_flags`."""

    cli: str = ""

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

    # -- command lines --------------------------------------------------------------------------

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

    def run_argv(
        self,
        options: Mapping[str, Any],
        *,
        image: str,
        name: str,
        command: str,
        env: Mapping[str, str],
        dataset_dir: Path | None,
        run_dir: Path | None,
        prepared_dir: Path | None = None,
        prepared_writable: bool = False,
        user: str | None = None,
        gpu_devices: Sequence[str] = (),
        read_only: Sequence[tuple[Path, str]] = (),
    ) -> list[str]:
        """The exact ``<engine> run`` command line of one container.

        The dataset (unless None) and prepared data are mounted read-only (the prepared data
        writable where asked), the run directory writable; the
        container runs as ``user`` (default: the caller), is removed when it ends, and gets no
        network unless the benchmark asks for one. ``--privileged`` is never used. With the
        system's ``gpus: auto`` the container gets exactly ``gpu_devices``, the GPUs assigned
        to the run (scripts/run/gpus.py), so concurrent runs never share one.
        """
        argv = [self.cli, "run", "--rm", "--name", name, "--label", f"{LABEL}.container={name}"]
        if options.get("init", True):
            argv.append("--init")  # a real PID 1: signals reach the trainer, zombies are reaped
        network = options.get("network") or "none"
        # 'default' (a data command's: scripts/run/backends/data_commands.py) is the engine's
        # own default network, whose name differs between docker and podman: no flag
        argv += ["--network", network] if network != "default" else []
        argv += [*self.user_flags(), "--user", user or caller_user()]
        if options.get("workdir"):
            argv += ["--workdir", options["workdir"]]
        if dataset_dir is not None:  # None: a data command (it makes one), or dataset: none
            argv += ["--mount", _bind(dataset_dir, options["dataset_mount"], readonly=True)]
            # the implementation's data folders where it reads them (its config_mounts.sh)
            for mount in options.get("data_mounts") or []:
                target = mount["mount"]
                argv += ["--mount", _bind(dataset_dir / mount["path"], target, readonly=True)]
        # read-only files of the workflow (the rank launcher)
        for source, target in read_only:
            argv += ["--mount", _bind(source, target, readonly=True)]
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

    # -- probing an image ------------------------------------------------------------------------

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
