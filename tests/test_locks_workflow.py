"""A campaign's folder is held against every other snakemake, including ones that cannot see it
in /proc: a second PID namespace (a container, or a second login node of a shared file system:
``unshare --uts``), PID 1 of a container, and two invocations started at the same moment. Real
snakemake runs of the fake trainer; a gated run keeps the campaign alive while the test looks.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from scripts.campaign import locks
from tests.conftest import fake_campaign, jobs_run, snakemake, snapshot
from tests.test_faults import _alive, _wait_for, executions
from tests.test_locks import need_unshare

TARGET = "results/fake/summary.csv"
HOST = socket.gethostname()
WAIT_S = 600  # an upper bound for conditions on a loaded machine, never a guess of speed


def gated(wf: Path, runs: int = 3) -> str:
    """A campaign whose run 1 waits at ``wf/gate`` (touch it to let the campaign finish)."""
    faults = {"gate": [1], "gate_file": "gate", "marker_dir": "markers"}
    return str(fake_campaign(wf, runs=runs, faults=faults, timeout_s=3600))


def start(wf: Path, overlay: str, *prefix: str, name: str = "main") -> subprocess.Popen[str]:
    """snakemake in the background (its output in ``<wf>/../<name>.out``), optionally under
    ``prefix`` (e.g. unshare)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE")}
    out = (wf.parent / f"{name}.out").open("w")
    cmd = [*prefix, sys.executable, "-m", "snakemake", TARGET, "--cores", "1"]
    return subprocess.Popen(
        [*cmd, "--configfile", overlay],
        cwd=wf,
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def output(wf: Path, name: str = "main") -> str:
    return (wf.parent / f"{name}.out").read_text()


def at_gate(wf: Path, main: subprocess.Popen[str]) -> None:
    """Wait until run 1 waits at the gate (the campaign is alive and holds its locks)."""
    _wait_for(lambda: (wf / "gate.waiting.1").exists() or main.poll() is not None, WAIT_S)
    assert main.poll() is None, output(wf)[-3000:]
    assert (wf / locks.RECORD).exists() and locks.lock_files(wf)


def finish(wf: Path, main: subprocess.Popen[str], name: str = "main") -> None:
    """Open the gate; the campaign finishes with every run, each trained once."""
    (wf / "gate").touch()
    assert main.wait(timeout=WAIT_S) == 0, output(wf, name)[-3000:]
    assert executions(wf) == {1: 1, 2: 1, 3: 1}
    assert pd.read_csv(wf / TARGET).loc[0, "n_runs"] == 3
    assert not (wf / locks.RECORD).exists() and not locks.lock_files(wf)


def locked_by(pid: int, stderr: str) -> bool:
    return (
        f"locked by snakemake pid {pid} on {HOST} since " in stderr
        and "if it is no longer running: snakemake --unlock" in stderr
        and "Directory cannot be locked" not in stderr
    )


def in_namespace(hostname: str | None) -> list[str]:
    """The prefix that runs a command in a new PID namespace (and, given a host name, a new
    UTS namespace with that name: what a second login node looks like from here)."""
    prefix = need_unshare()
    if hostname is None:
        return prefix
    return ["unshare", "--uts", *prefix[1:], "sh", "-c", f'hostname {hostname} && exec "$@"', "-"]


@pytest.mark.parametrize("hostname", [None, "login2"], ids=["container", "second-login-node"])
def test_a_second_snakemake_in_another_pid_namespace_leaves_the_campaign_alone(
    workflow_copy: Path, hostname: str | None
) -> None:
    wf = workflow_copy
    prefix = in_namespace(hostname)
    overlay = gated(wf)
    main = start(wf, overlay)
    try:
        at_gate(wf, main)
        before, record, held = snapshot(wf), (wf / locks.RECORD).read_bytes(), locks.lock_files(wf)
        second = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay, timeout=WAIT_S)
        assert second.returncode != 0 and locked_by(main.pid, second.stderr)  # same namespace
        other = subprocess.run(
            [*prefix, sys.executable, "-m", "snakemake", TARGET, "--cores", "1"]
            + ["--configfile", overlay],
            cwd=wf,
            capture_output=True,
            text=True,
            timeout=WAIT_S,
            env={k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE")},
        )
        assert other.returncode != 0, other.stderr[-3000:]
        assert locked_by(main.pid, other.stderr), other.stderr[-3000:]
        assert snapshot(wf) == before  # nothing of the campaign was touched
        assert (wf / locks.RECORD).read_bytes() == record and locks.lock_files(wf) == held
    finally:
        (wf / "gate").touch()
    finish(wf, main)


def test_snakemake_as_pid_1_of_a_container_runs_a_campaign_and_is_named_by_others(
    workflow_copy: Path,
) -> None:
    wf = workflow_copy
    prefix = need_unshare()
    overlay = gated(wf)
    main = start(wf, overlay, *prefix)
    try:
        at_gate(wf, main)
        record = json.loads((wf / locks.RECORD).read_text())
        assert record["pid"] == 1 and record["pid_ns"] != locks.this_process().pid_ns
        second = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay, timeout=WAIT_S)
        assert second.returncode != 0 and locked_by(1, second.stderr), second.stderr[-3000:]
    finally:
        (wf / "gate").touch()
    finish(wf, main)  # PID 1 did not take itself for another snakemake, and released the folder


def test_pid_1_of_a_container_leaves_the_locks_of_a_killed_host_snakemake_to_the_host(
    workflow_copy: Path,
) -> None:
    wf = workflow_copy
    prefix = need_unshare()
    overlay = gated(wf)
    main = start(wf, overlay)
    at_gate(wf, main)
    trainer = int(next((wf / "markers").glob("run_1.*")).name.split(".")[1])
    main.send_signal(signal.SIGKILL)
    main.wait()
    _wait_for(lambda: not _alive(trainer), timeout=WAIT_S)  # the runner saw its parent die
    record, held = (wf / locks.RECORD).read_bytes(), locks.lock_files(wf)
    inside = subprocess.run(
        [*prefix, sys.executable, "-m", "snakemake", TARGET, "--cores", "1"]
        + ["--configfile", overlay],
        cwd=wf,
        capture_output=True,
        text=True,
        timeout=WAIT_S,
        env={k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE")},
    )
    # the container cannot see the host's processes: it cannot prove that pid is gone
    assert inside.returncode != 0 and locked_by(main.pid, inside.stderr), inside.stderr[-3000:]
    assert "pid 1 " not in inside.stderr and "kill 1" not in inside.stderr
    assert (wf / locks.RECORD).read_bytes() == record and locks.lock_files(wf) == held
    # on the host it is provably gone: the plain command removes the locks and resumes
    (wf / "gate").touch()
    proc = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay, timeout=WAIT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Removing stale Snakemake locks of snakemake pid {main.pid} on this host" in proc.stderr
    assert executions(wf)[1] == 2 and not (wf / locks.RECORD).exists()


def test_the_locks_of_a_killed_container_need_unlock_which_clears_our_record_too(
    workflow_copy: Path,
) -> None:
    wf = workflow_copy
    prefix = need_unshare()  # --kill-child: killing unshare kills PID 1 and its namespace
    overlay = gated(wf)
    main = start(wf, overlay, *prefix)
    at_gate(wf, main)
    main.send_signal(signal.SIGKILL)
    main.wait()
    assert (wf / locks.RECORD).exists() and locks.lock_files(wf)
    (wf / "gate").touch()
    again = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay, timeout=WAIT_S)
    assert again.returncode != 0 and locked_by(1, again.stderr), again.stderr[-3000:]
    unlock = snakemake(wf, TARGET, "--unlock", "--configfile", overlay, timeout=WAIT_S)
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    assert not (wf / locks.RECORD).exists() and not locks.lock_files(wf)
    proc = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay, timeout=WAIT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = [j for j in jobs_run(proc.stderr) if j.startswith("train_run")]
    assert "train_run benchmark=fake, system=local, run=01" in trained


def test_two_snakemakes_started_at_once_on_a_running_campaign_are_both_told(
    workflow_copy: Path,
) -> None:
    wf = workflow_copy
    overlay = gated(wf)
    main = start(wf, overlay)
    try:
        at_gate(wf, main)
        before = snapshot(wf)
        twins = [start(wf, overlay, name=f"twin{i}") for i in (1, 2)]
        for i, twin in enumerate(twins, 1):
            assert twin.wait(timeout=WAIT_S) != 0
            assert locked_by(main.pid, output(wf, f"twin{i}")), output(wf, f"twin{i}")[-3000:]
        assert snapshot(wf) == before
        record = (wf / locks.RECORD).read_bytes()
        dry = snakemake(wf, TARGET, "-n", "--configfile", overlay, timeout=WAIT_S)
        assert dry.returncode == 0, dry.stderr[-3000:]  # a dry run only looks: not refused
        assert (wf / locks.RECORD).read_bytes() == record
    finally:
        (wf / "gate").touch()
    finish(wf, main)


def test_of_two_snakemakes_started_at_once_on_an_idle_folder_exactly_one_runs(
    workflow_copy: Path,
) -> None:
    wf = workflow_copy
    overlay = gated(wf)
    twins = [start(wf, overlay, name=f"twin{i}") for i in (1, 2)]
    try:
        # the one that lost stops while loading; the winner waits at the gate
        _wait_for(lambda: any(t.poll() is not None for t in twins), WAIT_S)
        (loser,) = [i for i, t in enumerate(twins) if t.poll() is not None]
        winner = 1 - loser
        assert twins[loser].returncode != 0
        lost = output(wf, f"twin{loser + 1}")
        assert locked_by(twins[winner].pid, lost), lost[-3000:]
        at_gate(wf, twins[winner])
    finally:
        (wf / "gate").touch()
    finish(wf, twins[winner], name=f"twin{winner + 1}")


def test_an_invocation_releases_the_folder_however_it_ends(workflow_copy: Path) -> None:
    """Snakemake calls onsuccess/onerror only after scheduling; the record goes at exit also
    after "Nothing to be done" and after a stop while loading (here: a config change)."""
    wf = workflow_copy
    overlay = str(fake_campaign(wf, runs=2))
    for args in ([], [], ["--forcerun", "summarize"]):
        proc = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay, *args)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "Removing stale" not in proc.stderr and not (wf / locks.RECORD).exists()
    change = wf / "change.yaml"
    change.write_text("benchmarks:\n  fake:\n    quality:\n      target: 0.8\n")
    proc = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay, str(change))
    assert proc.returncode != 0 and "would no longer be comparable" in proc.stderr
    assert not (wf / locks.RECORD).exists() and not locks.lock_files(wf)
    dry = snakemake(wf, TARGET, "-n", "--configfile", overlay)
    assert dry.returncode == 0 and not (wf / locks.RECORD).exists()


def test_unlock_clears_every_lock_and_runs_no_check_even_with_a_tampered_run(
    workflow_copy: Path,
) -> None:
    """--unlock only clears: a check that stops the workflow (here a tampered run) must not
    stop it, or Snakemake's lock files would stay while our record is gone."""
    wf = workflow_copy
    overlay = str(fake_campaign(wf, runs=2))
    assert snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay).returncode == 0
    record = {"host": "login2", "pid": 4242, "taken_utc": "2026-12-01T07:40:00Z"}
    (wf / locks.RECORD).write_text(json.dumps(record))
    lock_dir = wf / ".snakemake" / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    for name in ("0.input.lock", "0.output.lock"):
        (lock_dir / name).write_text("results/fake/summary.csv\n")
    log = wf / "results/fake/local/run_01/mlperf.log"
    log.write_bytes(log.read_bytes()[: log.stat().st_size // 2])  # tampered
    unlock = snakemake(wf, TARGET, "--unlock", "--configfile", overlay, timeout=WAIT_S)
    assert unlock.returncode == 0, unlock.stdout[-2000:] + unlock.stderr[-2000:]
    assert not (wf / locks.RECORD).exists() and not locks.lock_files(wf)
    # the next invocation still stops on the tampered run, naming it
    proc = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay, timeout=WAIT_S)
    assert proc.returncode != 0
    assert "run_01: mlperf.log changed since the run finished" in proc.stdout + proc.stderr
