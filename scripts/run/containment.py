"""Nothing a trainer starts outlives its attempt: the runner holds the trainer's whole process
tree, and when the trainer exits (success, crash, timeout, a signal to the runner, the loss of
its snakemake) everything the trainer left is killed and reaped *before* the log is checked
and sealed, so no process writes to a sealed log (which the next invocation would call
tampered) or keeps a GPU.

A process group is not enough: a child that calls ``setsid`` (a daemonising data loader, a
``nohup``/``setsid`` helper) leaves the group and survives ``killpg``. Two mechanisms hold
it, the first the machine allows (:func:`hold`):

- ``cgroup``: the trainer starts in a cgroup v2 of its own, made under the runner's own
  cgroup (``/proc/self/cgroup``, on the cgroup2 mount of ``/proc/self/mountinfo``) when that
  is writable (root, or a delegated subtree); nothing can leave it without write access to
  another cgroup, and ``cgroup.kill`` (Linux 5.14; before, SIGKILL per member until it is
  empty) kills all of it at once, fork races included. The trainer joins before it runs a
  line of its own: it is started as ``/bin/sh -c 'read -r _; exec "$@" </dev/null'``, and the
  runner writes its pid to ``cgroup.procs`` before it lets it ``exec``. The cgroup is named
  after the run's folder, so one left by a runner that was itself killed (``kill -9``) is
  emptied and reused by the next attempt of that run.
- ``subreaper``: the runner is the trainer's subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``)
  while an attempt lasts, so every orphan of the trainer's tree, ``setsid`` ones included,
  becomes the runner's child; once the trainer is gone, every descendant of the runner that
  did not exist before the attempt is killed (SIGKILL) and reaped, round after round until
  none is left.

With a cgroup the runner is the subreaper too, so the killed processes are reaped here and
their pids are gone, not zombies of an init that reaps late. ``none``: neither is possible
(not Linux), or ``MLPERF_CONTAINMENT=none`` asks for the process group alone (a trainer that
must leave a daemon behind); ``MLPERF_CONTAINMENT=subreaper`` skips the cgroup.
``run.json`` records which held the run (``containment``) and how many processes the trainer
left that were killed (``containment_killed``).

A container backend's trainer runs in the container's own cgroup, which its engine kills when
the runner stops and removes the container; what is held here is the engine's command line
(and whatever it leaves in the runner's tree).
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MECHANISMS = ("cgroup", "subreaper", "none")
MODE_ENV = "MLPERF_CONTAINMENT"  # auto (default), subreaper or none
PREFIX = "mlperf-run-"
# the longest wait for killed processes to be gone (they are SIGKILLed: only a process in an
# uninterruptible sleep, e.g. on a hung NFS server or GPU driver, takes longer)
KILL_WAIT_S = 30.0
_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37
# the trainer waits for the runner to put it in its cgroup, then becomes the command
HANDSHAKE = 'read -r _; exec "$@" </dev/null'


def _prctl(option: int, arg: Any) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(option, arg, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _subreaper() -> bool | None:
    """Whether this process is a child subreaper now (None: cannot tell, not Linux)."""
    flag = ctypes.c_int(0)
    if not _prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag)):
        return None
    return bool(flag.value)


def _set_subreaper(on: bool) -> bool:
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1 if on else 0)


# ---------------------------------------------------------------------------------------------
# processes, as /proc shows them


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(ppid, state, start time in clock ticks) of ``pid``, or None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        fields = text[text.rfind(")") + 2 :].split()  # after the command, which may hold ")"
        return int(fields[1]), fields[0], int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def _table() -> dict[int, tuple[int, str, int]]:
    """pid -> (ppid, state, start time) of every process this one can see."""
    table = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            table[int(entry.name)] = st
    return table


def _descendants(
    table: dict[int, tuple[int, str, int]], root: int, skip: frozenset[tuple[int, int]]
) -> list[int]:
    """The descendants of ``root`` in ``table``, without the processes in ``skip`` ((pid,
    start time) pairs) and their own descendants."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _state, _start) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if (pid, table[pid][2]) in skip:
            continue
        found.append(pid)
        todo += children.get(pid, [])
    return found


# ---------------------------------------------------------------------------------------------
# cgroup v2


def _own_cgroup() -> Path | None:
    """The folder of this process's cgroup v2 (None: no cgroup2 mount holds it)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    own = next((ln[3:] for ln in lines if ln.startswith("0::")), None)
    if own is None:
        return None
    for line in mounts:
        left, _, right = line.partition(" - ")
        if right.split(" ")[:1] != ["cgroup2"]:
            continue
        root, mountpoint = left.split(" ")[3:5]
        if own == root or own.startswith(root.rstrip("/") + "/"):
            folder = Path(mountpoint.replace("\\040", " ")) / own[len(root) :].lstrip("/")
            if (folder / "cgroup.procs").exists():
                return folder
    return None


def _members(cgroup: Path) -> list[int]:
    try:
        return [int(x) for x in (cgroup / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _populated(cgroup: Path) -> bool:
    try:
        return "populated 1" in (cgroup / "cgroup.events").read_text()
    except OSError:
        return False


def _kill_cgroup(cgroup: Path, deadline: float) -> set[int]:
    """SIGKILL every process in ``cgroup`` and wait until it is empty; the pids it held."""
    killed = set(_members(cgroup))
    if not killed:
        return killed
    try:
        (cgroup / "cgroup.kill").write_text("1")
    except OSError:  # before Linux 5.14: one by one, until no member is left
        pass
    while _populated(cgroup) and time.monotonic() < deadline:
        for pid in _members(cgroup):
            killed.add(pid)
            _signal(pid, signal.SIGKILL)
        time.sleep(0.005)
    return killed


def _signal(pid: int, sig: int) -> None:
    """Send ``sig`` to ``pid``; a process that is already gone is no error."""
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------------------------------------
# the holder of one attempt


class Held:
    """The containment of one attempt: start the trainer with :meth:`popen`, and call
    :meth:`kill_all` once it has exited (or to stop it): it kills and reaps everything it left.
    ``mechanism`` is what holds it ("cgroup", "subreaper" or "none")."""

    def __init__(self, cgroup: Path | None, subreaper: bool) -> None:
        self.cgroup = cgroup
        self.subreaper = subreaper
        self.mechanism = "cgroup" if cgroup else "subreaper" if subreaper else "none"
        self.trainer: int | None = None
        self.killed: set[int] = set()
        self._lock = threading.RLock()  # a signal handler may kill while we do
        # what already ran under this process (and its own children) is none of the trainer's
        self._before: frozenset[tuple[int, int]] = frozenset()
        if subreaper:
            table = _table()
            self._before = frozenset(
                (pid, table[pid][2]) for pid in _descendants(table, os.getpid(), frozenset())
            )

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """``subprocess.Popen(argv, **kwargs)``, with stdin /dev/null, inside the containment:
        with a cgroup, the process joins it before it runs ``argv`` (if it cannot, the
        cgroup is given up and the subreaper holds it)."""
        if self.cgroup is None:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kwargs)
            self.trainer = proc.pid
            return proc
        read, write = os.pipe()
        try:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", HANDSHAKE, "mlperf-trainer", *argv], stdin=read, **kwargs
            )
        except BaseException:
            os.close(write)
            raise
        finally:
            os.close(read)
        self.trainer = proc.pid
        try:
            (self.cgroup / "cgroup.procs").write_text(str(proc.pid))
        except OSError as exc:
            print(f"runner: cannot hold the trainer in {self.cgroup} ({exc})", file=sys.stderr)
            self._remove_cgroup()
            self.mechanism = "subreaper" if self.subreaper else "none"
        finally:
            try:
                os.write(write, b"go\n")
            except OSError:
                pass  # it is gone already: its exit status says how
            os.close(write)
        return proc

    def kill_all(self) -> int:
        """Kill (SIGKILL) and reap every process the trainer left (all of them when it still
        runs); the number of processes killed so far by this holder, the trainer not counted.
        Safe to call again, and from another thread (the watch on the runner's parent)."""
        with self._lock:
            deadline = time.monotonic() + KILL_WAIT_S
            if self.cgroup is not None:
                self.killed |= _kill_cgroup(self.cgroup, deadline)
            if self.subreaper:
                self.killed |= self._sweep(deadline)
            self.killed.discard(self.trainer or -1)
            return len(self.killed)

    def _sweep(self, deadline: float) -> set[int]:
        """Kill and reap the runner's descendants that were not there before the attempt, until
        none is left (a zombie's parent dies and it becomes the runner's child to reap)."""
        me, killed = os.getpid(), set()
        while True:
            table = _table()
            left = [
                pid
                for pid in _descendants(table, me, self._before)
                if not (pid == self.trainer and table[pid][1] in "ZX")  # Popen reaps it
            ]
            if not left:
                return killed
            for pid in left:
                if table[pid][1] not in "ZX":
                    _signal(pid, signal.SIGKILL)
                    killed.add(pid)
                if table[pid][0] == me and pid != self.trainer:
                    _reap(pid)
            if time.monotonic() > deadline:
                print(f"runner: processes {left} are still there after SIGKILL", file=sys.stderr)
                return killed
            time.sleep(0.005)

    def close(self) -> None:
        """Remove the (empty) cgroup."""
        with self._lock:
            if self.cgroup is not None:
                self._remove_cgroup()

    def _remove_cgroup(self) -> None:
        cgroup, self.cgroup = self.cgroup, None
        if cgroup is not None:
            try:
                cgroup.rmdir()
            except OSError:
                pass  # still busy: the next attempt of this run empties and reuses it


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def cgroup_name(run_dir: Path) -> str:
    """The cgroup of a run's attempts: one per run folder (so a runner killed with ``kill -9``
    leaves one that the next attempt of that run finds)."""
    return PREFIX + hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:16]


def _make_cgroup(run_dir: Path) -> Path | None:
    """The run's cgroup under this process's own, emptied of what an earlier runner of the run
    left (a killed runner's trainer), or None where no cgroup can be made here."""
    own = _own_cgroup()
    if own is None:
        return None
    cgroup = own / cgroup_name(run_dir)
    try:
        cgroup.mkdir()
    except FileExistsError:
        left = _kill_cgroup(cgroup, time.monotonic() + KILL_WAIT_S)
        if left:
            print(
                f"runner: killed {len(left)} processes left in {cgroup} by an earlier runner "
                "of this run",
                flush=True,
            )
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT):
            print(f"runner: cannot make a cgroup in {own} ({exc})", file=sys.stderr)
        return None
    return cgroup if (cgroup / "cgroup.procs").exists() else None


@contextmanager
def hold(run_dir: Path) -> Iterator[Held]:
    """The containment of one attempt of the run in ``run_dir``: a cgroup where this machine
    lets the runner make one, and the runner as subreaper; on leaving, everything is killed
    (:meth:`Held.kill_all`), the cgroup removed and the subreaper flag restored."""
    mode = os.environ.get(MODE_ENV) or "auto"
    if mode not in ("auto", "subreaper", "none"):
        print(f"runner: {MODE_ENV}={mode!r} is not auto, subreaper or none: auto", flush=True)
        mode = "auto"
    was = _subreaper() if mode != "none" else None
    subreaper = was is not None and _set_subreaper(True)
    cgroup = _make_cgroup(run_dir) if mode == "auto" else None
    held = Held(cgroup, subreaper)
    try:
        yield held
    finally:
        held.kill_all()
        held.close()
        if subreaper and not was:
            _set_subreaper(False)


def probe() -> str:
    """What would hold a run started here now: "cgroup", "subreaper" or "none" (a cgroup is
    made and removed to find out)."""
    with hold(Path(f"/nonexistent/containment-probe-{os.getpid()}")) as held:
        return held.mechanism


if __name__ == "__main__":
    print(f"containment of a run started here: {probe()}")
