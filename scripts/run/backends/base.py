"""The interface every backend implements, and what a launched run looks like to the runner.

A backend is how a system's training runs execute: ``local`` (a subprocess here), ``docker``
and ``podman`` (a container of the system's image), ``import`` (no execution: the runs are
published logs). The workflow asks a backend four things, and never branches on its name:

- its identity and options for the fingerprint (:meth:`Backend.fingerprint_record`,
  :meth:`Backend.system_record`) and how a run's command sees its paths
  (:meth:`Backend.run_setup`);
- the extra rule inputs it needs, e.g. an image stamp (:meth:`Backend.run_inputs`,
  :meth:`Backend.runner_args`, :meth:`Backend.environment_inputs`,
  :meth:`Backend.environment_args`);
- how to launch an attempt and how to stop it (:meth:`Backend.check_run`,
  :meth:`Backend.launch`, which returns a :class:`Launch`);
- how to probe the environment runs see (:meth:`Backend.probe`).

Modelled on ReFrame's ``ContainerPlatform``: one small class per backend, looked up by name
once, at the edge (:func:`scripts.run.backends.get`).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # types only: not imported at run time
    from scripts.run.backends.image import ImageSpec
    from scripts.run.spec import RunSpec

GRACE_S = 10.0  # between SIGTERM and SIGKILL of the trainer's process group


def kill_group(proc: subprocess.Popen[bytes], grace_s: float = GRACE_S) -> None:
    """SIGTERM the trainer's process group, then SIGKILL whatever is left after ``grace_s``."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            # the leader is gone; make sure no member of its group survives
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def _no_cleanup() -> None:
    """After an attempt of a backend that leaves nothing behind."""


@dataclass
class Launch:
    """How one attempt starts and stops: the command line, its environment, and how to kill
    everything it started (``kill(proc, grace_s)``), with what the runner prints and records
    about it."""

    argv: list[str]
    env: dict[str, str]
    kill: Callable[[subprocess.Popen[bytes], float], None]
    # after the attempt, whatever happened (e.g. make sure the container is gone)
    cleanup: Callable[[], None] = _no_cleanup
    # what the runner added to the environment (e.g. the assigned GPUs), for the job's log
    added_env: dict[str, str] | None = None
    # run.json keys of this launch (e.g. the image and the engine's command line), and which
    # of them are part of the run's fingerprint
    record: dict[str, Any] = field(default_factory=dict)
    fingerprinted: tuple[str, ...] = ()
    # the line the runner prints before it starts (e.g. "docker: docker run ..."), or None
    shown_as: str | None = None
    # a container's engine (its CLI's name), or None: stopping it stops and removes the
    # container, and ``start_failures`` are the exit statuses of the engine failing to start
    # it (scripts/run/failure.py: failure_reason)
    engine: str | None = None
    start_failures: tuple[int, ...] = ()


class Backend(Protocol):
    """One backend. ``name`` is the config's ``backend:`` value."""

    name: str
    # True where runs execute here (the runner starts them); False for imported logs
    trains: bool
    # True where a system's runs are published logs read from its folder (config import_dir),
    # one per result file; False where the benchmark's implementation makes them
    imports: bool
    # the module whose command line builds and uses the backend's images (rules/image.smk:
    # python -m <module> build|prepare), or None for a backend without images
    module: str | None

    def can_run(self, implementation: Mapping[str, Any]) -> bool:
        """Whether this backend can run a benchmark of this ``implementation`` section."""
        ...

    def config_problems(self, config: Mapping[str, Any], system: str) -> list[str]:
        """What a schema cannot check about a system of this backend, one line each."""
        ...

    def fingerprint_record(
        self, config: Mapping[str, Any], benchmark: str, system: str
    ) -> dict[str, Any]:
        """Keys added to the comparability record of (benchmark, system), e.g. the image's
        identity and how containers run; empty where the backend adds nothing."""
        ...

    def system_record(self, system: Mapping[str, Any]) -> dict[str, Any]:
        """Keys of the system's config added to the record's ``system`` part."""
        ...

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
        """(the RunSpec's ``container`` options, the command's {python}, {dataset_dir} and
        {run_dir} as the trainer sees them)."""
        ...

    def has_image(self) -> bool:
        """Whether runs need an image built by rules/image.smk."""
        ...

    def stale_reason(self, stamp: Path, spec: ImageSpec, check_engine: bool = True) -> str | None:
        """Why an existing image stamp no longer describes the image to use (what it is built
        from changed, or ``check_engine``: the engine no longer has it), or None."""
        ...

    def needs_prepare(self, config: Mapping[str, Any], benchmark: str) -> bool:
        """Whether the benchmark's one-time data preparation runs for this backend."""
        ...

    def run_inputs(self, config: Mapping[str, Any], benchmark: str, system: str) -> dict[str, str]:
        """Extra inputs of a training run (name -> path), e.g. the image stamp."""
        ...

    def runner_args(self, benchmark: str, system: str) -> list[str]:
        """Extra arguments of scripts/run/runner.py, e.g. ``--image-stamp <stamp>``."""
        ...

    def environment_inputs(self, benchmark: str, system: str) -> dict[str, str]:
        """Extra inputs of the environment capture, e.g. the image stamp."""
        ...

    def environment_args(self, config: Mapping[str, Any], benchmark: str, system: str) -> list[str]:
        """Extra arguments of scripts/run/environment.py, e.g. the stamp and the image's Python."""
        ...

    def check_run(self, spec: RunSpec, image_stamp: Path | None, run_dir: Path) -> None:
        """Refuse (BackendError) a run this backend cannot make, before its first attempt."""
        ...

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
        """How one attempt of ``spec`` starts (``command``: the spec's, or its multi-node
        launch) and how it is stopped."""
        ...

    def probe(self, image_stamp: Path | None, python: str) -> dict[str, Any] | None:
        """The software runs see when it is not this Python's (e.g. the image's: its
        ``python``, ``packages``, ``image`` and ``image_id``), or None."""
        ...
