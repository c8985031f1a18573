"""GPU assignment: concurrent runs on one machine get disjoint devices, never more than declared."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from scripts.run import gpus

HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from scripts.run.gpus import GpuLocks
    locks = GpuLocks(Path(sys.argv[1]))
    got = locks.acquire(int(sys.argv[2]), sys.argv[3].split(","))
    print(",".join(got), flush=True)
    time.sleep(float(sys.argv[4]))
    """
)


def hold(lock_dir: Path, n: int, devices: str, seconds: float) -> tuple[subprocess.Popen, str]:
    """Another process (another run's runner) holding ``n`` of ``devices``."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_dir), str(n), devices, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def test_declared_devices_default_to_the_first_gpus_ids():
    assert gpus.declared_devices(2, None) == ("0", "1")
    assert gpus.declared_devices(1, [2, 5]) == ("2", "5")
    assert gpus.declared_devices(0, None) == ()
    with pytest.raises(gpus.GpuError, match="twice"):
        gpus.declared_devices(1, [1, 1])


def test_a_run_without_gpus_changes_nothing(tmp_path):
    with gpus.assign(0, mode="local", devices=(), lock_dir=tmp_path) as a:
        assert a == gpus.Assignment((), "none")
        assert gpus.cuda_env(a) == {}
        assert a.to_meta() == {"gpu_devices": [], "gpu_assignment": "none", "gpu_wait_s": 0.0}
    assert not tmp_path.joinpath("gpu0.lock").exists()


def test_runs_holding_gpus_get_disjoint_sets_and_a_third_gets_none(tmp_path):
    first, got1 = hold(tmp_path, 1, "0,1,2", 30)
    second, got2 = hold(tmp_path, 2, "0,1,2", 30)
    try:
        assert got1 == "0"
        assert got2 == "1,2"
        assert gpus.GpuLocks(tmp_path).acquire(1, ["0", "1", "2"]) == []
        # a run that asks for two of the three while two are free takes both at once or none
        first.kill()
        first.wait()
        locks = gpus.GpuLocks(tmp_path)
        assert locks.acquire(2, ["0", "1", "2"]) == []  # only 0 is free
        assert locks.acquire(1, ["0", "1", "2"]) == ["0"]
        locks.release()
    finally:
        for p in (first, second):
            p.kill()
            p.wait()


def test_a_killed_run_leaves_its_gpu_free(tmp_path):
    proc, got = hold(tmp_path, 1, "0", 60)
    assert got == "0"
    assert gpus.GpuLocks(tmp_path).acquire(1, ["0"]) == []
    os.kill(proc.pid, signal.SIGKILL)  # no cleanup code runs: the kernel drops the lock
    proc.wait()
    locks = gpus.GpuLocks(tmp_path)
    assert locks.acquire(1, ["0"]) == ["0"]
    assert tmp_path.joinpath("gpu0.lock").read_text().strip() == str(os.getpid())
    locks.release()


def test_a_run_waits_for_a_busy_gpu_and_says_so(tmp_path):
    proc, got = hold(tmp_path, 1, "0", 1.5)
    assert got == "0"
    messages: list[str] = []
    t0 = time.monotonic()
    try:
        with gpus.assign(
            1, mode="local", devices=("0",), lock_dir=tmp_path, log=messages.append
        ) as a:
            assert a.devices == ("0",) and a.source == "lock"
            assert time.monotonic() - t0 >= 1.0
            assert a.waited_s >= 1.0
            # numbered by PCI bus, as NVML (the nvml power source) and nvidia-smi number them
            assert gpus.cuda_env(a) == {
                "CUDA_VISIBLE_DEVICES": "0",
                "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
            }
    finally:
        proc.wait()
    assert "waiting for 1 free GPU(s) of ['0']" in messages[0]
    assert f"pid {proc.pid}" in messages[0]
    assert messages[-1].startswith("gpus: assigned ['0']")


def test_waiting_can_be_bounded(tmp_path):
    proc, _ = hold(tmp_path, 1, "0", 30)
    try:
        with pytest.raises(gpus.GpuError, match=r"no 1 free GPU\(s\) of \['0'\] within 0.5 s"):
            with gpus.assign(
                1,
                mode="local",
                devices=("0",),
                lock_dir=tmp_path,
                timeout_s=0.5,
                log=lambda _m: None,
            ):
                pass
    finally:
        proc.kill()
        proc.wait()


def test_a_waiting_run_stops_when_told(tmp_path):
    proc, _ = hold(tmp_path, 1, "0", 30)
    asked = []

    def stop() -> str | None:
        asked.append(1)
        return "its snakemake is gone" if len(asked) > 1 else None

    try:
        with pytest.raises(gpus.GpuError, match="stopped waiting .*: its snakemake is gone"):
            with gpus.assign(
                1, mode="local", devices=("0",), lock_dir=tmp_path, stop_waiting=stop,
                log=lambda _m: None,
            ):  # fmt: skip
                pass
    finally:
        proc.kill()
        proc.wait()


def test_never_more_than_the_system_declares(tmp_path):
    with pytest.raises(gpus.GpuError, match=r"asks for 2 GPU\(s\) but the system declares only 1"):
        with gpus.assign(2, mode="local", devices=("0",), lock_dir=tmp_path):
            pass


def test_in_a_cluster_job_the_schedulers_devices_are_recorded(tmp_path):
    env = {"CUDA_VISIBLE_DEVICES": "2,3"}
    with gpus.assign(2, mode="scheduler", devices=(), env=env, lock_dir=tmp_path) as a:
        assert a == gpus.Assignment(("2", "3"), "scheduler")
        assert gpus.cuda_env(a) == {}  # the job's environment stays as the scheduler set it
    notes: list[str] = []
    with gpus.assign(2, mode="scheduler", devices=(), env={}, log=notes.append) as a:
        assert a.devices == () and a.notes
    assert "asks for 2 GPU(s) per run, but the scheduler's CUDA_VISIBLE_DEVICES is None" in notes[0]
    assert list(tmp_path.iterdir()) == []  # no lock is taken in a cluster job


def test_a_container_gets_the_devices_as_a_docker_gpus_flag():
    assert gpus.docker_gpus_arg(["1", "3"]) == ["--gpus", '"device=1,3"']
    assert gpus.docker_gpus_arg([]) == []
