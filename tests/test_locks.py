"""Who holds a workflow folder (scripts/campaign/locks.py): a lock left behind is removed only when
its
owner is provably gone; otherwise the user is told who holds it. Real processes, real /proc,
real PID namespaces (``unshare``), no mocks."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest

from scripts.campaign import locks
from scripts.campaign.locks import Process, verdict

REPO = Path(__file__).resolve().parents[1]
ME = Process(host="node1", boot_id="boot-a", pid_ns="pid:[4026531836]", pid=4242, start_ticks=900)
OWNER = replace(ME, pid=777, start_ticks=500)


def probe_of(table: dict[int, int]):
    return lambda pid: table.get(pid)


# ---------------------------------------------------------------------------------------------
# The decision.


def test_an_owner_on_another_host_is_never_judged_from_here() -> None:
    # a second login node of a shared file system: its pid 777 means nothing here
    found = verdict(replace(OWNER, host="node2", boot_id="boot-b"), ME, probe_of({}))
    assert found.state == "held" and "another host (node2)" in found.why


def test_another_boot_or_an_unknown_boot_is_not_proof() -> None:
    # the same host name with another boot id: a reboot, or another machine of that name
    assert verdict(replace(OWNER, boot_id="boot-b"), ME, probe_of({})).state == "held"
    assert verdict(replace(OWNER, boot_id=None), ME, probe_of({})).state == "held"
    assert verdict(OWNER, replace(ME, boot_id=None), probe_of({})).state == "held"


def test_an_owner_in_another_pid_namespace_is_not_seen_so_it_is_held() -> None:
    # a container's snakemake: /proc here does not show it, whatever pid it had
    other_ns = replace(OWNER, pid_ns="pid:[4026532999]")
    found = verdict(other_ns, ME, probe_of({}))
    assert found.state == "held" and "another PID namespace" in found.why
    assert verdict(replace(OWNER, pid_ns=None), ME, probe_of({})).state == "held"


def test_same_host_boot_and_namespace_and_the_pid_is_gone() -> None:
    found = verdict(OWNER, ME, probe_of({}))
    assert found.state == "gone" and "pid 777 no longer exists" in found.why


def test_a_reused_pid_is_another_process() -> None:
    found = verdict(OWNER, ME, probe_of({777: 501}))
    assert found.state == "gone" and "another process" in found.why


def test_a_live_owner_holds_the_folder() -> None:
    found = verdict(OWNER, ME, probe_of({777: 500}))
    assert found.state == "held" and "still running" in found.why


def test_a_foreign_proc_or_a_record_without_start_time_proves_nothing() -> None:
    assert verdict(OWNER, ME, None).state == "held"  # /proc of another namespace
    assert verdict(replace(OWNER, start_ticks=None), ME, probe_of({})).state == "held"


def test_the_record_of_this_very_process_is_mine() -> None:
    assert verdict(ME, ME, probe_of({ME.pid: ME.start_ticks})).state == "mine"


def test_pid_1_is_never_taken_for_the_owner_or_for_another_process() -> None:
    me = replace(ME, pid=1, pid_ns="pid:[4026532001]", start_ticks=7000)
    # a record of pid 1 of another container: another namespace, so held, never "kill 1"
    other = replace(me, pid_ns="pid:[4026532002]", start_ticks=100)
    assert verdict(other, me, probe_of({1: 7000})).state == "held"
    # a record of an earlier pid 1 in a namespace whose number came back: not me (start time)
    earlier = replace(me, start_ticks=100)
    assert verdict(earlier, me, probe_of({1: 7000})).state == "gone"
    # the host's snakemake, pid 4242 in the host namespace: not visible from the container
    assert verdict(ME, me, probe_of({})).state == "held"


def test_the_message_names_pid_host_and_time() -> None:
    record = {"pid": 777, "host": "node2", "taken_utc": "2026-12-01T07:40:00+00:00"}
    assert locks.locked_message(record) == (
        "locked by snakemake pid 777 on node2 since 2026-12-01 07:40:00 UTC; "
        "if it is no longer running: snakemake --unlock"
    )


def test_a_record_that_names_no_process_is_refused() -> None:
    with pytest.raises(KeyError):
        locks.owner_of({"host": "x"})
    with pytest.raises(ValueError):
        locks.owner_of({"host": "x", "pid": "12"})


# ---------------------------------------------------------------------------------------------
# Probes of real processes.


def test_the_start_time_of_this_process_and_of_a_process_that_ended() -> None:
    me = locks.this_process()
    assert me.pid == os.getpid() and me.host == socket.gethostname()
    assert me.start_ticks == locks.start_ticks(os.getpid()) is not None
    assert me.boot_id and me.pid_ns and me.pid_ns.startswith("pid:[")
    assert locks.proc_is_mine()
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert locks.start_ticks(child.pid) is None  # reaped: no such process


def test_a_zombie_is_gone_and_a_command_name_with_parens_parses(tmp_path: Path) -> None:
    odd = tmp_path / "a b) c"
    odd.symlink_to(shutil.which("sleep") or "/bin/sleep")
    proc = subprocess.Popen([str(odd), "30"])
    try:
        _wait_for(lambda: ") c" in Path(f"/proc/{proc.pid}/stat").read_text())
        ticks = locks.start_ticks(proc.pid)
        assert ticks is not None and ticks >= locks.this_process().start_ticks  # started later
        proc.send_signal(signal.SIGKILL)
        _wait_for(lambda: Path(f"/proc/{proc.pid}/stat").read_text().split(") ")[-1][0] == "Z")
        assert locks.start_ticks(proc.pid) is None  # a zombie no longer runs
    finally:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------------------------------------
# Taking and releasing the folder, with real processes.

HOLDER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from scripts.campaign import locks
    root = Path(sys.argv[1])
    go, end = root / "go", root / "end"
    (root / f"ready.{os.getpid()}").touch()
    while not go.exists():
        time.sleep(0.01)
    at = float(go.read_text() or 0)
    while time.time() < at:
        pass  # busy: every racer tries at the same instant
    try:
        locks.acquire(root, ["snakemake", "--cores", "1"])
        print("took", flush=True)
    except locks.Locked as exc:
        print(exc, flush=True)
    while not end.exists():
        time.sleep(0.01)
    os._exit(0)  # like kill -9: no release
    """
)


def _holder(root: Path, *prefix: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*prefix, sys.executable, "-c", HOLDER, str(root)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )


def _wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.02)
    pytest.fail("timed out waiting")


def _take_in_child(root: Path, *prefix: str) -> subprocess.Popen[str]:
    """A real process that takes the folder and keeps it until ``root/end`` exists."""
    (root / "go").touch()
    child = _holder(root, *prefix)
    _wait_for(lambda: (root / locks.RECORD).exists() or child.poll() is not None)
    return child


def test_an_idle_folder_is_taken_and_released(tmp_path: Path) -> None:
    assert locks.acquire(tmp_path, ["snakemake", "x y"]) is None
    record = json.loads((tmp_path / locks.RECORD).read_text())
    me = locks.this_process()
    assert locks.owner_of(record) == me
    assert record["command"] == "snakemake 'x y'" and record["format_version"] == 1
    assert locks.acquire(tmp_path, ["snakemake"]) is None  # this process again: mine
    assert locks.release(tmp_path)
    assert not (tmp_path / locks.RECORD).exists()


def test_the_record_is_created_only_where_none_exists(tmp_path: Path) -> None:
    (tmp_path / ".snakemake").mkdir()
    first = locks.new_record(ME, ["snakemake"])
    assert locks._create(tmp_path, first)
    assert not locks._create(tmp_path, locks.new_record(OWNER, ["snakemake"]))
    assert json.loads((tmp_path / locks.RECORD).read_text()) == first  # whole, and untouched
    assert [p.name for p in (tmp_path / ".snakemake").iterdir()] == ["mlperf-owner.json"]


@pytest.mark.parametrize("end", ["sys.exit(0)", "raise RuntimeError('boom')", "sys.exit(1)"])
def test_the_holder_releases_the_folder_when_it_exits(tmp_path: Path, end: str) -> None:
    code = "import sys\nfrom pathlib import Path\nfrom scripts.campaign import locks\n"
    code += f"locks.hold(Path(sys.argv[1]), ['snakemake'])\n{end}\n"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 or end == "sys.exit(0)"
    assert (tmp_path / ".snakemake").is_dir() and not (tmp_path / locks.RECORD).exists()


def test_a_folder_where_no_record_can_be_written_gets_one_line(tmp_path: Path) -> None:
    (tmp_path / ".snakemake").write_text("not a folder")
    with pytest.raises(
        locks.Locked, match=r"^cannot write the lock record .*\.snakemake: File exists$"
    ):
        locks.hold(tmp_path, ["snakemake"])


def test_a_live_holder_is_named_and_its_record_is_left_alone(tmp_path: Path) -> None:
    child = _take_in_child(tmp_path)
    try:
        before = (tmp_path / locks.RECORD).read_bytes()
        with pytest.raises(locks.Locked) as exc:
            locks.acquire(tmp_path, ["snakemake"])
        assert str(exc.value).startswith(
            f"locked by snakemake pid {child.pid} on {socket.gethostname()} since "
        )
        assert str(exc.value).endswith("; if it is no longer running: snakemake --unlock")
        assert not locks.release(tmp_path)  # never another invocation's record
        assert (tmp_path / locks.RECORD).read_bytes() == before
    finally:
        (tmp_path / "end").touch()
        child.wait()


def test_locks_of_a_killed_holder_on_this_host_are_removed(tmp_path: Path) -> None:
    child = _take_in_child(tmp_path)
    snakemake_locks = tmp_path / ".snakemake" / "locks"
    snakemake_locks.mkdir()
    (snakemake_locks / "0.input.lock").write_text("x")
    child.send_signal(signal.SIGKILL)
    child.wait()
    removed = locks.acquire(tmp_path, ["snakemake"])
    assert removed is not None and f"snakemake pid {child.pid} on this host" in removed
    assert "no longer exists" in removed and ".snakemake/locks/0.input.lock" in removed
    assert not list(snakemake_locks.iterdir())
    assert locks.owner_of(json.loads((tmp_path / locks.RECORD).read_text())).pid == os.getpid()


def test_snakemake_lock_files_without_a_record_are_not_removed(tmp_path: Path) -> None:
    lock = tmp_path / ".snakemake" / "locks" / "0.output.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("x")
    with pytest.raises(locks.Locked) as exc:
        locks.acquire(tmp_path, ["snakemake"])
    assert str(exc.value).startswith("locked by a snakemake of unknown pid and host since ")
    assert ".snakemake/locks/0.output.lock" in str(exc.value)
    assert str(exc.value).endswith("if it is no longer running: snakemake --unlock")
    assert lock.exists() and not (tmp_path / locks.RECORD).exists()


def test_an_unreadable_record_is_not_removed(tmp_path: Path) -> None:
    (tmp_path / ".snakemake").mkdir()
    (tmp_path / locks.RECORD).write_text('{"pid": 12')
    with pytest.raises(locks.Locked, match=r"cannot be read \(not JSON.*snakemake --unlock"):
        locks.acquire(tmp_path, ["snakemake"])
    (tmp_path / locks.RECORD).write_text('{"host": "x"}')
    with pytest.raises(locks.Locked, match="it names no process"):
        locks.acquire(tmp_path, ["snakemake"])
    assert locks.unlock(tmp_path) == [tmp_path / locks.RECORD]
    assert locks.acquire(tmp_path, ["snakemake"]) is None


def test_of_many_processes_started_at_once_exactly_one_takes_the_folder(tmp_path: Path) -> None:
    racers = [_holder(tmp_path) for _ in range(6)]
    try:
        # every racer is ready and polls for "go": they all try within milliseconds
        _wait_for(lambda: len(list(tmp_path.glob("ready.*"))) == len(racers))
        assert not (tmp_path / locks.RECORD).exists()
        (tmp_path / "go.tmp").write_text(str(time.time() + 0.5))
        (tmp_path / "go.tmp").rename(tmp_path / "go")
        # each racer prints one line once it has tried; the holders keep running until "end"
        lines = [r.stdout.readline().strip() for r in racers]  # type: ignore[union-attr]
    finally:
        (tmp_path / "end").touch()
        for r in racers:
            r.wait()
    winners = [r.pid for r, line in zip(racers, lines, strict=True) if line == "took"]
    assert len(winners) == 1, lines
    losers = [line for line in lines if line != "took"]
    assert all(
        line.startswith(f"locked by snakemake pid {winners[0]} on {socket.gethostname()}")
        for line in losers
    ), lines


# ---------------------------------------------------------------------------------------------
# PID namespaces (a container, or what /proc cannot show).


def need_unshare() -> list[str]:
    """The command prefix that runs a process as PID 1 of a new PID namespace with its own
    /proc; unavailable is a failure under CI (which runs as root), a skip elsewhere."""
    prefix = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]
    try:
        out = subprocess.run([*prefix, "sh", "-c", "echo $$"], capture_output=True, text=True)
        problem = None if out.stdout.strip() == "1" else (out.stderr.strip() or out.stdout)
    except OSError as exc:
        problem = str(exc)
    if problem is None:
        return prefix
    if os.environ.get("CI") == "true":
        pytest.fail(f"unshare --pid cannot run here: {problem}")
    pytest.skip(f"unshare --pid cannot run here: {problem}")


def test_a_record_taken_as_pid_1_of_a_container_is_held_even_after_it_died(
    tmp_path: Path,
) -> None:
    prefix = need_unshare()
    child = _take_in_child(tmp_path, *prefix)
    record = json.loads((tmp_path / locks.RECORD).read_text())
    assert record["pid"] == 1 and record["pid_ns"] != locks.this_process().pid_ns
    with pytest.raises(locks.Locked, match=f"locked by snakemake pid 1 on {socket.gethostname()}"):
        locks.acquire(tmp_path, ["snakemake"])
    (tmp_path / "end").touch()
    child.wait()
    # its namespace is gone, but nothing here can prove that: the user decides (--unlock)
    with pytest.raises(locks.Locked, match="locked by snakemake pid 1 "):
        locks.acquire(tmp_path, ["snakemake"])


def test_pid_1_of_a_container_does_not_judge_a_dead_host_process(tmp_path: Path) -> None:
    prefix = need_unshare()
    child = _take_in_child(tmp_path)  # in this namespace
    (tmp_path / "end").touch()
    child.wait()  # gone, but only this namespace can see that
    (tmp_path / "go").unlink()
    (tmp_path / "end").unlink()
    inside = _take_in_child(tmp_path, *prefix)  # PID 1 of a new namespace tries
    (tmp_path / "end").touch()
    out, _ = inside.communicate()
    assert out.strip().startswith(f"locked by snakemake pid {child.pid} on {socket.gethostname()}")
    assert locks.owner_of(json.loads((tmp_path / locks.RECORD).read_text())).pid == child.pid
    assert locks.acquire(tmp_path, ["snakemake"]) is not None  # here it is provably stale
