"""Which GPUs a training run may use, so that runs sharing a machine never share a GPU.

Snakemake counts GPUs (``--resources gpu=N`` caps how many runs go at once) but assigns none:
every local job sees every GPU. So the runner asks this module for a disjoint set first:

- **local** (the run executes where snakemake runs, or on a machine of its own without a
  scheduler): the run takes ``gpus`` devices from the system's declared ``gpu_devices`` by
  holding an exclusive ``fcntl`` lock on one file per device (``<lock_dir>/gpu<ID>.lock``) for
  its whole duration. Locks are released by the kernel when the runner exits, even on
  ``kill -9``, so a crashed run never leaves a GPU taken. If fewer than ``gpus`` devices are
  free, the run waits (and says so in its job log) until enough are; it never takes a device
  outside the declared list. Every campaign on the machine that uses the same lock folder (the
  default is machine-wide) sees the same locks.
- **scheduler** (the run is a cluster job, e.g. Slurm through the workflow's profile): the
  scheduler already bound the job to its GPUs and set ``CUDA_VISIBLE_DEVICES``; it is recorded
  as given.

The result is an :class:`Assignment`. :func:`cuda_env` turns it into the environment of a
trainer that runs directly on the host; a container backend gives the devices to the container
instead (:func:`docker_gpus_arg`): inside a container the devices are renumbered from 0, so the
host's ids must not be put into the container's ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

DEFAULT_LOCK_DIR = Path("/tmp/mlperf-workflow-gpu-locks")
POLL_S = 1.0


class GpuError(RuntimeError):
    """The run cannot get the GPUs it asks for; the message says why and what to change."""


@dataclass(frozen=True, slots=True)
class Assignment:
    """The GPUs of one run: ``devices`` as CUDA numbers them on the host, and who chose them:
    ``lock`` (this module, from the declared list), ``scheduler`` (the cluster job's
    CUDA_VISIBLE_DEVICES) or ``none`` (the run asks for no GPU)."""

    devices: tuple[str, ...]
    source: str
    waited_s: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_meta(self) -> dict[str, object]:
        """The fields a run records in run.json and result.json."""
        return {
            "gpu_devices": list(self.devices),
            "gpu_assignment": self.source,
            "gpu_wait_s": round(self.waited_s, 3),
        }


def parse_visible(value: str | None) -> tuple[str, ...] | None:
    """``CUDA_VISIBLE_DEVICES`` as a tuple of ids (None when unset; ``()`` when empty)."""
    if value is None:
        return None
    return tuple(v.strip() for v in value.split(",") if v.strip())


def declared_devices(gpus: int, gpu_devices: Sequence[int | str] | None) -> tuple[str, ...]:
    """The devices runs of a system may use on this machine: ``gpu_devices``, or the first
    ``gpus`` ids (0, 1, ...) when none are declared (so by default runs take turns)."""
    if gpu_devices is None:
        return tuple(str(i) for i in range(gpus))
    devices = tuple(str(d) for d in gpu_devices)
    if len(set(devices)) != len(devices):
        raise GpuError(f"gpu_devices lists a device twice: {list(devices)}")
    return devices


def cuda_env(assignment: Assignment) -> dict[str, str]:
    """Environment for a trainer on the host: it sees exactly the assigned devices.

    Only devices assigned here change it: a run that asks for no GPU keeps the environment
    it has (the embedded CPU benchmark ignores GPUs), and so does a cluster job or a node's
    srun step, whose GPUs the scheduler set (or, on a cluster that does not set
    CUDA_VISIBLE_DEVICES, bound by other means).

    ``CUDA_DEVICE_ORDER=PCI_BUS_ID``: the device ids are then numbered as nvidia-smi, NVML
    (the ``nvml`` power source reads these GPUs) and a container engine's ``--gpus`` number
    them; CUDA's default order, fastest first, differs on a node of mixed GPUs."""
    if assignment.source != "lock":
        return {}
    return {"CUDA_VISIBLE_DEVICES": ",".join(assignment.devices), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


def docker_gpus_arg(devices: Sequence[str]) -> list[str]:
    """``docker run`` arguments that give a container exactly ``devices`` (none: no flag).

    The quotes keep docker's CSV parser from splitting the device list at its commas."""
    if not devices:
        return []
    return ["--gpus", f'"device={",".join(devices)}"']


@dataclass(slots=True)
class _Held:
    device: str
    handle: IO[str]


class GpuLocks:
    """Exclusive per-device locks under ``lock_dir`` (see the module docstring)."""

    def __init__(self, lock_dir: Path) -> None:
        self.lock_dir = lock_dir
        self._held: list[_Held] = []

    def _path(self, device: str) -> Path:
        return self.lock_dir / f"gpu{device}.lock"

    def _open(self, device: str) -> IO[str]:
        if not self.lock_dir.is_dir():
            self.lock_dir.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                os.chmod(self.lock_dir, 0o1777)  # every user of the machine shares it
        fd = os.open(self._path(device), os.O_RDWR | os.O_CREAT, 0o666)
        return os.fdopen(fd, "r+")

    def try_lock(self, device: str) -> bool:
        handle = self._open(device)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.close()
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return False
            raise
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._held.append(_Held(device, handle))
        return True

    def holder(self, device: str) -> str:
        """The pid written by the run that holds ``device`` (informative only)."""
        try:
            return self._path(device).read_text().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        for held in self._held:
            with contextlib.suppress(OSError):
                held.handle.seek(0)
                held.handle.truncate()
            held.handle.close()  # closing the descriptor releases the flock
        self._held.clear()

    def acquire(self, n: int, devices: Sequence[str]) -> list[str]:
        """Lock ``n`` of ``devices`` at once, in their order, or none (returns [])."""
        got: list[str] = []
        for device in devices:
            if len(got) == n:
                break
            if self.try_lock(device):
                got.append(device)
        if len(got) < n:
            self.release()
            return []
        return got


def _scheduler_assignment(
    gpus: int, env: Mapping[str, str], log: Callable[[str], None]
) -> Assignment:
    """The job's CUDA_VISIBLE_DEVICES, with a note (logged) when it does not hold ``gpus``."""
    visible = parse_visible(env.get("CUDA_VISIBLE_DEVICES"))
    notes: tuple[str, ...] = ()
    if visible is None or len(visible) != gpus:
        note = (
            f"the system asks for {gpus} GPU(s) per run, but the scheduler's "
            f"CUDA_VISIBLE_DEVICES is {env.get('CUDA_VISIBLE_DEVICES')!r}"
        )
        log(f"gpus: warning: {note}")
        notes = (note,)
    return Assignment(visible or (), "scheduler", notes=notes)


def _wait_for_locks(
    locks: GpuLocks,
    gpus: int,
    devices: Sequence[str],
    lock_dir: Path,
    timeout_s: float | None,
    stop_waiting: Callable[[], str | None],
    log: Callable[[str], None],
) -> list[str]:
    """Poll until ``gpus`` of ``devices`` are locked (the wait announced once); GpuError when
    ``stop_waiting`` gives a reason or ``timeout_s`` passes."""
    t0 = time.monotonic()
    announced = False
    while True:
        got = locks.acquire(gpus, devices)
        if got:
            return got
        if not announced:
            busy = ", ".join(f"{d} (pid {locks.holder(d)})" for d in devices)
            log(
                f"gpus: waiting for {gpus} free GPU(s) of {list(devices)}; in use: {busy} "
                f"(locks in {lock_dir})"
            )
            announced = True
        why = stop_waiting()
        if why:
            raise GpuError(f"stopped waiting for {gpus} GPU(s) of {list(devices)}: {why}")
        if timeout_s is not None and time.monotonic() - t0 > timeout_s:
            raise GpuError(
                f"no {gpus} free GPU(s) of {list(devices)} within {timeout_s} s "
                f"(locks in {lock_dir})"
            )
        time.sleep(POLL_S)


@contextlib.contextmanager
def assign(
    gpus: int,
    *,
    mode: str,
    devices: Sequence[str],
    lock_dir: Path = DEFAULT_LOCK_DIR,
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    stop_waiting: Callable[[], str | None] = lambda: None,
    log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True),
) -> Iterator[Assignment]:
    """The GPUs of one run, held until the ``with`` block ends.

    ``mode`` is ``local`` (lock ``gpus`` of ``devices``) or ``scheduler`` (take the job's
    CUDA_VISIBLE_DEVICES from ``env``). ``timeout_s`` bounds the wait for free devices (None:
    wait as long as it takes; other runs on the machine have their own timeouts);
    ``stop_waiting`` is asked while waiting and ends the wait with its reason (e.g. the
    snakemake that started the run is gone).
    """
    env = os.environ if env is None else env
    if gpus == 0:
        yield Assignment((), "none")
        return
    if mode == "scheduler":
        yield _scheduler_assignment(gpus, env, log)
        return
    if mode != "local":
        raise ValueError(f"unknown GPU assignment mode {mode!r}")
    if gpus > len(devices):
        raise GpuError(
            f"a run asks for {gpus} GPU(s) but the system declares only {len(devices)} "
            f"({list(devices)}); raise gpu_devices or lower gpus"
        )
    locks = GpuLocks(lock_dir)
    t0 = time.monotonic()
    got = _wait_for_locks(locks, gpus, devices, lock_dir, timeout_s, stop_waiting, log)
    waited = time.monotonic() - t0
    log(f"gpus: assigned {got} (waited {waited:.1f} s)")
    try:
        yield Assignment(tuple(got), "lock", waited_s=waited)
    finally:
        locks.release()
