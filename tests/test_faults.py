"""The fault table (docs/campaign.md, "Faults and recovery"): each fault, what the workflow
does, and the proof that finished runs stay byte-identical and only the affected runs are
executed again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from scripts.campaign import locks
from tests.conftest import fake_campaign, jobs_run, set_faults, snakemake, snapshot

TARGET = "results/fake/summary.csv"


def executions(wf: Path) -> dict[int, int]:
    """How many times each run's trainer started (marker files of the fake trainer)."""
    counts: dict[int, int] = {}
    for marker in (wf / "markers").glob("run_*.*"):
        run = int(marker.name.split(".")[0].split("_")[1])
        counts[run] = counts.get(run, 0) + 1
    return counts


def run_files(snap: dict[str, tuple[str, int]], *runs: str) -> dict[str, tuple[str, int]]:
    return {k: v for k, v in snap.items() if any(f"/run_{r}/" in k for r in runs)}


def campaign(wf: Path, faults: dict, **kw) -> str:
    return str(fake_campaign(wf, runs=3, faults={**faults, "marker_dir": "markers"}, **kw))


def recover_and_check(wf: Path, overlay: str, redone: str) -> None:
    """Clear the faults, run again: only run ``redone`` executes; the others stay identical."""
    kept = [r for r in ("01", "02", "03") if r != redone]
    before = run_files(snapshot(wf), *kept)
    counts = executions(wf)
    set_faults(wf, {"marker_dir": "markers"})
    proc = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert run_files(snapshot(wf), *kept) == before  # same bytes, same mtimes
    after = executions(wf)
    assert after[int(redone)] == counts.get(int(redone), 0) + 1
    assert {r: after[r] for r in after if r != int(redone)} == {
        r: counts[r] for r in counts if r != int(redone)
    }
    trained = [j for j in jobs_run(proc.stderr) if j.startswith("train_run")]
    assert trained == [f"train_run benchmark=fake, system=local, run={redone}"]
    assert pd.read_csv(wf / TARGET).loc[0, "n_runs"] == 3


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("crash", "trainer exited with status 3"),
        ("signal", "trainer killed by signal 9"),
        ("truncate", "no run_stop event"),
    ],
)
def test_a_failed_run_is_redone_alone_and_every_attempt_log_is_kept(
    workflow_copy: Path, fault: str, reason: str
) -> None:
    wf = workflow_copy
    overlay = campaign(wf, {fault: [2]})
    first = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay)
    assert first.returncode != 0
    assert not (wf / "results/fake/local/run_02/mlperf.log").exists()
    assert (wf / "results/fake/local/run_03/result.json").exists()  # the others went on
    again = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay)  # fails again
    assert again.returncode != 0
    kept = sorted((wf / "logs/failed/fake/local").glob("run_02.attempt*.log"))
    assert [k.name.split(".")[1] for k in kept] == ["attempt1", "attempt2"]
    assert all(reason in k.read_text() for k in kept)
    status = subprocess.run(
        [sys.executable, "-m", "scripts.campaign.status", "--configfile", overlay],
        cwd=wf,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "run_02  failed" in status and reason in status and "attempt2" in status
    assert "run_01  done" in status
    recover_and_check(wf, overlay, "02")


def test_a_hung_run_is_killed_at_its_timeout_with_its_whole_tree(workflow_copy: Path) -> None:
    wf = workflow_copy
    overlay = campaign(wf, {"hang": [2]}, timeout_s=2)
    t0 = time.monotonic()
    proc = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay)
    assert proc.returncode != 0 and time.monotonic() - t0 < 60
    (kept,) = (wf / "logs/failed/fake/local").glob("run_02.attempt1.*.log")
    assert "timed out after 2" in kept.read_text()
    pids = [int(m.name.split(".")[1]) for m in (wf / "markers").glob("run_2.*")]
    assert pids and not any(_alive(pid) for pid in pids)
    recover_and_check(wf, overlay, "02")


def test_garbage_lines_are_counted_not_fatal(workflow_copy: Path) -> None:
    wf = workflow_copy
    overlay = campaign(wf, {"garbage": [1]})
    proc = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    result = json.loads((wf / "results/fake/local/run_01/result.json").read_text())
    assert result["converged"] is True and result["malformed_lines"] >= 2
    assert any("malformed" in p for p in result["problems"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its reaper is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    pytest.fail("timed out waiting")


def _start(wf: Path, overlay: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE")}
    return subprocess.Popen(
        [sys.executable, "-m", "snakemake", TARGET, "--cores", "1", "--configfile", overlay],
        cwd=wf,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def test_kill_9_of_snakemake_leaves_no_trainer_and_the_plain_command_resumes(
    workflow_copy: Path,
) -> None:
    wf = workflow_copy
    # run 2 also leaves a setsid grandchild (out of its process group) writing to its log
    overlay = campaign(wf, {"hang": [2], "stray": [2]})
    main = _start(wf, overlay)
    _wait_for(lambda: (wf / "strays/run_2.pid").exists())
    stray = int((wf / "strays/run_2.pid").read_text())
    finished = {r for r in ("01", "03") if (wf / f"results/fake/local/run_{r}/mlperf.log").exists()}
    before = run_files(snapshot(wf), *finished)
    main.send_signal(signal.SIGKILL)
    main.wait()
    trainer = int(next((wf / "markers").glob("run_2.*")).name.split(".")[1])
    try:
        _wait_for(lambda: not _alive(trainer), timeout=15)  # the runner saw its parent die
        _wait_for(lambda: not _alive(stray), timeout=15)  # and killed what left the group
    finally:
        if _alive(stray):
            os.kill(stray, signal.SIGKILL)
    assert locks.lock_files(wf) and (wf / locks.RECORD).exists()  # kill -9 left the locks
    set_faults(wf, {"marker_dir": "markers"})
    proc = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"Removing stale Snakemake locks of snakemake pid {main.pid} on this host" in proc.stderr
    assert not (wf / locks.RECORD).exists()  # the resumed invocation released the folder
    after = snapshot(wf)
    assert {k: after[k] for k in before} == before  # what existed before the kill is untouched
    trained = {j.split("run=")[1] for j in jobs_run(proc.stderr) if j.startswith("train_run")}
    assert "02" in trained and not trained & finished
    assert executions(wf)[2] == 2


def test_a_second_snakemake_is_told_the_folder_is_locked(workflow_copy: Path) -> None:
    wf = workflow_copy
    # run 1 waits at a gate that this test opens: it is alive, its log is flushed and no file
    # under results/ changes until then, however slow the machine (no timeout can strike)
    overlay = campaign(wf, {"gate": [1], "gate_file": "gate"}, timeout_s=3600)
    main = _start(wf, overlay)
    try:
        _wait_for(lambda: (wf / "gate.waiting.1").exists() or main.poll() is not None, 600)
        assert main.poll() is None, main.communicate()[0][-3000:]
        before = snapshot(wf)
        record = (wf / locks.RECORD).read_bytes()
        held = locks.lock_files(wf)
        second = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay)
        assert second.returncode != 0
        assert (
            f"locked by snakemake pid {main.pid} on {socket.gethostname()} since "
        ) in second.stderr
        assert "if it is no longer running: snakemake --unlock" in second.stderr
        assert "Directory cannot be locked" not in second.stderr
        assert snapshot(wf) == before
        assert (wf / locks.RECORD).read_bytes() == record and locks.lock_files(wf) == held
    finally:
        (wf / "gate").touch()
        out = main.communicate(timeout=600)[0]
    assert main.returncode == 0, out[-3000:]  # the campaign was left alone and finished
    assert executions(wf) == {1: 1, 2: 1, 3: 1}
    assert not (wf / locks.RECORD).exists() and not locks.lock_files(wf)  # released


def test_a_config_change_stops_and_names_the_runs_then_archive_redoes_them(
    workflow_copy: Path,
) -> None:
    wf = workflow_copy
    overlay = campaign(wf, {})
    assert snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay).returncode == 0
    before = snapshot(wf)
    change = wf / "change.yaml"
    change.write_text("benchmarks:\n  fake:\n    quality:\n      target: 0.8\n")
    proc = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay, str(change))
    assert proc.returncode != 0
    assert "runs 01, 02, 03 were made under a different configuration" in proc.stderr
    assert "quality.target: 0.9 -> 0.8" in proc.stderr
    assert "python -m scripts archive results/fake/local" in proc.stderr
    assert snapshot(wf) == before
    subprocess.run(
        [sys.executable, "-m", "scripts.campaign.archive", "archive", "results/fake/local"],
        cwd=wf,
        check=True,
        capture_output=True,
    )
    (archived,) = (wf / "results/archive/fake").glob("local.*")
    moved = {
        k.replace(f"results/archive/fake/{archived.name}", "results/fake/local"): v[0]
        for k, v in snapshot(wf).items()
        if "results/archive" in k
    }
    assert moved == {k: v[0] for k, v in before.items() if "results/fake/local" in k}
    proc = snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay, str(change))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert executions(wf) == {1: 2, 2: 2, 3: 2}


def test_rerun_one_iteration_then_the_summary_updates(workflow_copy: Path) -> None:
    wf = workflow_copy
    overlay = campaign(wf, {})
    assert snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay).returncode == 0
    old = (wf / "results/fake/local/run_02/mlperf.log").read_bytes()
    subprocess.run(
        [sys.executable, "-m", "scripts.campaign.archive", "rerun", "fake", "local", "2"],
        cwd=wf,
        check=True,
        capture_output=True,
    )
    (kept,) = (wf / "results/archive/fake/local").glob("run_02.replaced-*")
    assert (kept / "mlperf.log").read_bytes() == old
    recover_and_check(wf, overlay, "02")


def test_a_partial_summary_while_a_run_is_failing(workflow_copy: Path) -> None:
    wf = workflow_copy
    overlay = campaign(wf, {"crash": [3]})
    snakemake(wf, TARGET, "--cores", "1", "--configfile", overlay)
    proc = snakemake(
        wf, "results/fake/summary.partial.csv", "--cores", "1", "--configfile", overlay
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = pd.read_csv(wf / "results/fake/summary.partial.csv").iloc[0]
    assert bool(row["partial"]) and row["n_runs"] == 2 and row["n_expected"] == 3
    assert "partial: 2 of 3" in row["reason"]
    assert not (wf / TARGET).exists()
