"""The ``docker`` backend: images built with ``docker build``, runs in ``docker run``
containers (scripts/run/backends/container.py, engine.py and stamp.py have everything docker and
podman share).

What is docker's own: GPUs are given with ``--gpus`` (the NVIDIA container toolkit), and a
container that the engine could not start exits 125.

The build_image and prepare_data rules call ``python -m scripts docker build|prepare``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from scripts.run.backends.container import ContainerBackend
from scripts.run.gpus import docker_gpus_arg

DOCKER = "docker"


def gpu_flags(gpus: Any, gpu_count: int, assigned: Sequence[str] = ()) -> list[str]:
    """``--gpus`` from the system config: 'auto' (the devices assigned to the run; all when
    none were assigned but the system has GPUs), 'none', 'all', a count, or a list of device
    ids."""
    if gpus == "auto":
        if assigned:
            return docker_gpus_arg(assigned)
        return ["--gpus", "all"] if gpu_count > 0 else []
    if gpus in (None, "none", 0):
        return []
    if gpus == "all":
        return ["--gpus", "all"]
    if isinstance(gpus, int):
        return ["--gpus", str(gpus)]
    ids = ",".join(str(g) for g in gpus)
    return ["--gpus", f'"device={ids}"']  # the quotes keep the comma list one value


class DockerBackend(ContainerBackend):
    name = DOCKER
    cli = DOCKER
    store = "the Docker engine"
    start_failures = (125,)

    def gpu_flags(self, gpus: Any, gpu_count: int, assigned: Sequence[str] = ()) -> list[str]:
        return gpu_flags(gpus, gpu_count, assigned)


BACKEND = DockerBackend()
# the engine's steps by name, as the tests and scripts call them
build = BACKEND.build
build_argv = BACKEND.build_argv
run_argv = BACKEND.run_argv
stale_reason = BACKEND.stale_reason
containers_named = BACKEND.containers_named
main = BACKEND.main

if __name__ == "__main__":
    raise SystemExit(main())
