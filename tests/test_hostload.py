"""The machine's other work during a run: a CPU burner beside a run is seen, the run's own CPU
is not counted as other work."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scripts.run import hostload

# {s} seconds of CPU, not of wall time: on a loaded machine it takes longer, never less work
BURN = "import time\nwhile time.process_time() < {s}: pass\n"


def burn(seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", BURN.format(s=seconds)])


def background(seconds: float = 1.0) -> hostload.HostLoad:
    """The others' CPU while this test does nothing (a condition, not a guess: it is measured)."""
    meter = hostload.HostMeter()
    time.sleep(seconds)
    return meter.finish()


def test_the_runs_own_cpu_is_not_other_work():
    before = background()
    meter = hostload.HostMeter()
    trainers = [burn(1.5), burn(1.5)]  # children the meter's process reaps: the run's own work
    for t in trainers:
        t.wait()
    load = meter.finish()
    assert load.run_cpu_s >= 1.0, load
    # two busy cores of its own did not make the machine look busy (the others' share only
    # shrinks while the run takes the cores)
    assert load.host_busy <= before.host_busy + 0.3, (before, load)


def outside_burner() -> int:
    """A burner in another process tree (a grandchild that is not reaped by us: its parent
    exits at once), like another user's job; its pid."""
    outside = subprocess.run(
        [sys.executable, "-c",
         "import subprocess, sys\n"
         f"p = subprocess.Popen([sys.executable, '-c', {BURN.format(s=30.0)!r}], "
         "start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
         "print(p.pid)\n"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return int(outside.stdout)


def test_the_others_cpu_is_measured_and_the_run_is_flagged(tmp_path: Path):
    burner = outside_burner()
    try:
        measure_beside_a_burner()
    finally:
        gone(burner)


def test_a_run_beside_a_burner_records_it_in_run_json(tmp_path: Path, paths):
    """The runner's own record: run.json's host_load names the others' cores."""
    from scripts.run.runner import execute
    from tests.test_run_training import good_log_command, spec

    trainer = (
        f"{sys.executable} -c {shlex.quote(BURN.format(s=1.5))} && {good_log_command(tmp_path)}"
    )
    burner = outside_burner()
    try:
        meta = execute(spec(trainer), **paths)
    finally:
        gone(burner)
    host = meta.host_load or {}
    assert host["host_busy"] >= 0.5 and host["seconds"] >= 1.0, host
    assert host["run_cpu_s"] >= 1.0, host  # the trainer's own core is the run's
    assert meta.cache == "cold" and (meta.dataset_residency or {})["files"] == 0
    # ... into result.json, and the report names the run
    from scripts.analysis import report_findings
    from scripts.run import result_json

    result = result_json.write_result(
        paths["log_path"], paths["meta_path"], {"target": 0.0}, "run_stop", tmp_path / "r.json"
    )
    assert result.host_busy == host["host_busy"] and result.cache == "cold"
    (warning,) = report_findings.shared_core_warnings([result])
    assert warning.startswith(f"s: run(s) 1 ({host['host_busy']:.2f} cores) shared the machine")


def gone(pid: int) -> None:
    """Kill the outside burner and wait until it is gone (init reaps it), so that the next
    test finds a quiet machine."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return
        if state in ("Z", "X"):
            return  # dead, its CPU spent; only its entry waits for init
        time.sleep(0.05)
    raise AssertionError(f"the burner {pid} is still running")


def measure_beside_a_burner() -> None:
    meter = hostload.HostMeter()
    trainer = burn(2.0)  # the run's own work, one core
    trainer.wait()
    load = meter.finish()
    assert 0.5 <= load.run_cpu_s <= 3.0, load
    assert load.host_busy >= 0.5, load  # the outside burner: about one core
    assert load.disturbed
    meta = load.to_meta()
    assert meta["host_busy"] == round(load.host_busy, 4) and meta["cpus"] >= 1


def test_a_quiet_run_is_not_flagged():
    """On a quiet machine a run is not flagged. The premise is measured before and after each
    attempt (another process may start in between on a shared machine: then the attempt says
    nothing and is made again, up to three times)."""
    attempts = []
    for _ in range(3):
        before = background()
        meter = hostload.HostMeter()
        trainer = burn(1.5)
        trainer.wait()
        load = meter.finish()
        after = background()
        if not before.disturbed and not after.disturbed:
            assert not load.disturbed, (before, load, after)
            return
        attempts.append(max(before.host_busy, after.host_busy))
    message = f"the machine is not quiet (others use {max(attempts):.2f} cores)"
    if os.environ.get("CI") == "true":  # CI runs one test at a time: nothing else may run
        pytest.fail(message)
    pytest.skip(message)


def test_busy_cpu_reads_the_cpu_line(tmp_path: Path):
    stat = tmp_path / "stat"
    tick = hostload.TICK
    stat.write_text(f"cpu  {tick} {tick} {tick} {100 * tick} {5 * tick} {tick} {tick} 7 0 0\n")
    assert hostload.busy_cpu_s(stat) == 5.0  # iowait, idle and steal are not busy
    stat.write_text("intr 1 2 3\n")
    with pytest.raises(ValueError, match="no cpu line"):
        hostload.busy_cpu_s(stat)
