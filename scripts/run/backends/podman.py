"""The ``podman`` backend: images built with ``podman build``, runs in ``podman run``
containers, daemonless (scripts/run/backends/container.py, engine.py and stamp.py have everything
docker and podman share).

What is podman's own:

- GPUs are CDI devices (``--device nvidia.com/gpu=<id>``, ``nvidia.com/gpu=all``; the NVIDIA
  container toolkit's ``nvidia-ctk cdi generate`` writes their spec), not ``--gpus``;
- rootless podman maps the caller to root in the container's user namespace: with
  ``--userns keep-id`` the caller's ``--user uid:gid`` is the same uid on the host, so the run's
  files belong to the caller (as root, podman needs no user namespace);
- an engine that could not start a container exits 125, one whose OCI runtime could not start
  the command 126;
- the engine's own settings (OCI runtime, default ulimits, cgroup manager) come from its
  containers.conf, e.g. ``CONTAINERS_CONF`` (see .ci/podman-up.sh).

The build_image and prepare_data rules call ``python -m scripts podman build|prepare``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from scripts.run.backends.container import ContainerBackend

PODMAN = "podman"
CDI_GPU = "nvidia.com/gpu"


def gpu_flags(gpus: Any, gpu_count: int, assigned: Sequence[str] = ()) -> list[str]:
    """CDI ``--device`` flags from the system config: 'auto' (the devices assigned to the run;
    all when none were assigned but the system has GPUs), 'none', 'all', a count (the first
    ones) or a list of device ids."""
    if gpus == "auto":
        if assigned:
            return _devices(assigned)
        return _devices(["all"]) if gpu_count > 0 else []
    if gpus in (None, "none", 0):
        return []
    if gpus == "all":
        return _devices(["all"])
    if isinstance(gpus, int):
        return _devices([str(i) for i in range(gpus)])
    return _devices([str(g) for g in gpus])


def _devices(ids: Sequence[str]) -> list[str]:
    return [w for i in ids for w in ("--device", f"{CDI_GPU}={i}")]


class PodmanBackend(ContainerBackend):
    name = PODMAN
    cli = PODMAN
    store = "podman's image store"
    start_failures = (125, 126)

    def gpu_flags(self, gpus: Any, gpu_count: int, assigned: Sequence[str] = ()) -> list[str]:
        return gpu_flags(gpus, gpu_count, assigned)

    def user_flags(self) -> list[str]:
        """Rootless: keep the caller's uid in the container's user namespace."""
        return [] if os.geteuid() == 0 else ["--userns", "keep-id"]


BACKEND = PodmanBackend()
# the engine's steps by name, as the tests and scripts call them
build = BACKEND.build
build_argv = BACKEND.build_argv
run_argv = BACKEND.run_argv
stale_reason = BACKEND.stale_reason
containers_named = BACKEND.containers_named
main = BACKEND.main

if __name__ == "__main__":
    raise SystemExit(main())
