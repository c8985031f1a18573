"""Who holds a workflow folder, and when a lock left behind may be removed without asking.

Snakemake's own lock files (``.snakemake/locks/*.lock``) say only *that* a snakemake holds
the folder, not which one. They survive a ``kill -9`` and then block the next plain
invocation. Removing them is safe only when their owner is provably gone; otherwise a second
invocation trains run_01 again next to the first one and both lose every run.

So the main invocation writes a record of its own when it starts, ``.snakemake/mlperf-owner.json``:
host, boot id, PID namespace, pid and the process's start time, the time it was taken and the
command line. It is created atomically (written to a temporary file, then ``link``-ed to its
name, which fails when one exists, also on NFS), and removed when the invocation ends.

A record (with Snakemake's lock files) is removed automatically only when it was made on this
host, in this boot, in this PID namespace, and that pid no longer exists or is another process
(another start time). In every other case (another host, such as a second login node on a shared
file system; another boot; another PID namespace, such as a container; lock files without a
record; an unreadable record) nobody here can see the owner, so the workflow stops and says
``locked by snakemake pid N on HOST since TIME; if it is no longer running: snakemake --unlock``.

Inside a container snakemake may be PID 1: it is told apart from the record's owner by the
namespace and the start time, never by its pid alone.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import shlex
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
RECORD = Path(".snakemake") / "mlperf-owner.json"
GUARD = Path(".snakemake") / "mlperf-owner.guard"
UNLOCK = "snakemake --unlock"
NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK}


class Locked(Exception):
    """The folder cannot be taken: a snakemake that may still be running holds it, or the
    lock record cannot be read or written (the message says which, and what to do)."""


@dataclass(frozen=True)
class Process:
    """What identifies a process across hosts, boots and PID namespaces."""

    host: str
    boot_id: str | None
    pid_ns: str | None
    pid: int
    start_ticks: int | None  # /proc/<pid>/stat field 22: clock ticks since boot


@dataclass(frozen=True)
class Verdict:
    """What a record says about its owner: ``mine``, ``gone`` (may be removed) or ``held``."""

    state: str
    why: str


# ---------------------------------------------------------------------------------------------
# Probes of this machine (/proc).


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def start_ticks(pid: int | str, proc: Path = Path("/proc")) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, None when there is no such process.

    A zombie counts as gone: it no longer runs and only waits for its parent."""
    stat = _read(str(proc / str(pid) / "stat"))
    if stat is None:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces and ')'
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])  # fields[0] is field 3 (state); field 22 is the start time


def proc_is_mine() -> bool:
    """Whether /proc shows this process's PID namespace: ``unshare --pid`` without
    ``--mount-proc`` leaves the parent namespace's /proc, whose pids are not ours."""
    try:
        return os.readlink("/proc/self") == str(os.getpid())
    except OSError:
        return False


def this_process() -> Process:
    ns = None
    with contextlib.suppress(OSError):
        ns = os.readlink("/proc/self/ns/pid")
    return Process(
        host=socket.gethostname(),
        boot_id=_read("/proc/sys/kernel/random/boot_id"),
        pid_ns=ns,
        pid=os.getpid(),
        start_ticks=start_ticks("self"),
    )


# ---------------------------------------------------------------------------------------------
# The decision (pure).


def verdict(owner: Process, me: Process, probe: Callable[[int], int | None] | None) -> Verdict:
    """Whether ``owner`` (the record's process) is ``me``, provably ``gone``, or may still
    hold the folder (``held``). ``probe(pid)`` gives the start time of a pid of this PID
    namespace (None: no such process); ``probe`` is None where /proc cannot be trusted."""
    if owner.host != me.host:
        return Verdict("held", f"it was taken on another host ({owner.host})")
    if owner.boot_id is None or owner.boot_id != me.boot_id:
        # a reboot ended it, or another machine uses the same host name: not provable here
        return Verdict("held", "it was taken in another boot, or on a machine of the same name")
    if owner.pid_ns is None or owner.pid_ns != me.pid_ns:
        return Verdict("held", f"it was taken in another PID namespace ({owner.pid_ns})")
    if owner.start_ticks is None:
        return Verdict("held", "its record has no process start time")
    if owner == me:
        return Verdict("mine", "this invocation took it")
    if probe is None:
        return Verdict("held", "/proc does not show this PID namespace")
    now = probe(owner.pid)
    if now is None:
        return Verdict("gone", f"pid {owner.pid} no longer exists")
    if now != owner.start_ticks:
        return Verdict("gone", f"pid {owner.pid} is another process now (started later)")
    return Verdict("held", f"pid {owner.pid} is still running")


def owner_of(record: dict[str, Any]) -> Process:
    """The owner named by a record; KeyError/TypeError/ValueError when it names none."""
    pid = record["pid"]
    ticks = record.get("start_ticks")
    if not isinstance(pid, int) or not (ticks is None or isinstance(ticks, int)):
        raise ValueError("pid and start_ticks must be integers")
    return Process(
        host=str(record["host"]),
        boot_id=record.get("boot_id"),
        pid_ns=record.get("pid_ns"),
        pid=pid,
        start_ticks=ticks,
    )


def since(record: dict[str, Any]) -> str:
    """The record's time in UTC, as the message prints it."""
    try:
        taken = dt.datetime.fromisoformat(record["taken_utc"])
        return taken.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (KeyError, TypeError, ValueError):
        return "an unknown time"


def locked_message(record: dict[str, Any]) -> str:
    return (
        f"locked by snakemake pid {record.get('pid', '?')} on {record.get('host', '?')} "
        f"since {since(record)}; if it is no longer running: {UNLOCK}"
    )


def _mtime_utc(paths: Sequence[Path]) -> str:
    stamps = []
    for p in paths:
        with contextlib.suppress(OSError):
            stamps.append(p.stat().st_mtime)
    if not stamps:
        return "an unknown time"
    return dt.datetime.fromtimestamp(min(stamps), dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def orphan_locks_message(root: Path, locks: Sequence[Path]) -> str:
    names = ", ".join(str(p.relative_to(root)) for p in locks)
    return (
        f"locked by a snakemake of unknown pid and host since {_mtime_utc(locks)} (Snakemake's "
        f"lock files {names} exist without {RECORD}); if it is no longer running: {UNLOCK}"
    )


def unreadable_message(why: str) -> str:
    return (
        f"locked: the lock record {RECORD} cannot be read ({why}); if no snakemake is running "
        f"in this folder: {UNLOCK}"
    )


# ---------------------------------------------------------------------------------------------
# The files.


def lock_files(workdir: Path) -> list[Path]:
    """Snakemake's lock files in ``workdir``."""
    locks = workdir / ".snakemake" / "locks"
    return sorted(locks.glob("*.lock")) if locks.is_dir() else []


def read_record(root: Path) -> dict[str, Any] | None:
    """The record, None when there is none; ValueError (saying why) when it is unreadable."""
    try:
        text = (root / RECORD).read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(exc.strerror or str(exc)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def new_record(me: Process, argv: Sequence[str], now: dt.datetime | None = None) -> dict[str, Any]:
    taken = now or dt.datetime.now(dt.UTC)
    return {
        "format_version": FORMAT_VERSION,
        **asdict(me),
        "taken_utc": taken.isoformat(timespec="seconds"),
        "command": shlex.join(argv),
    }


@contextlib.contextmanager
def _guard(root: Path) -> Iterator[bool]:
    """Serialize the take/remove of the record among the invocations of this host (flock);
    yields False where the file system has no locks (then nothing stale is removed)."""
    fd = os.open(root / GUARD, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        guarded = True
    except OSError:
        guarded = False
    try:
        yield guarded
    finally:
        os.close(fd)  # closing releases the flock


def _create(root: Path, record: dict[str, Any]) -> bool:
    """Create the record atomically with its whole content; False when one exists."""
    path = root / RECORD
    tmp = path.with_name(f"{path.name}.{record['host']}.{record['pid']}.{os.urandom(4).hex()}")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    try:
        os.link(tmp, path)
        return True
    except OSError as exc:
        # NFS may report a failed link (even EEXIST, for a retransmitted request) that in
        # fact happened: the link count says (open(2), O_EXCL on NFS)
        if tmp.stat().st_nlink == 2:
            return True
        if isinstance(exc, FileExistsError):
            return False
        if exc.errno not in NO_HARD_LINKS:
            raise
    finally:
        tmp.unlink(missing_ok=True)
    # a file system without hard links: O_EXCL, the content follows in one write
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return True


def remove_stale(root: Path, locks: Sequence[Path]) -> None:
    for p in locks:
        p.unlink(missing_ok=True)
    (root / RECORD).unlink(missing_ok=True)


def acquire(root: Path, argv: Sequence[str], me: Process | None = None) -> str | None:
    """Take the folder for this invocation. Returns a line saying what stale lock was removed
    (None if none was); raises :class:`Locked` when another snakemake may hold it."""
    me = me or this_process()
    (root / RECORD).parent.mkdir(parents=True, exist_ok=True)
    probe = start_ticks if proc_is_mine() else None
    with _guard(root) as guarded:
        removed = None
        locks = lock_files(root)
        try:
            record = read_record(root)
        except ValueError as exc:
            raise Locked(unreadable_message(str(exc))) from None
        if record is None and locks:
            raise Locked(orphan_locks_message(root, locks))
        if record is not None:
            try:
                owner = owner_of(record)
            except (KeyError, TypeError, ValueError) as exc:
                raise Locked(unreadable_message(f"it names no process: {exc}")) from None
            found = verdict(owner, me, probe)
            if found.state == "mine":
                return None
            if found.state == "held" or not guarded:
                raise Locked(locked_message(record))
            names = ", ".join(str(p.relative_to(root)) for p in [*locks, root / RECORD])
            removed = (
                f"Removing stale Snakemake locks of snakemake pid {owner.pid} on this host "
                f"(taken {since(record)}; {found.why}): {names}"
            )
            remove_stale(root, locks)
        if not _create(root, new_record(me, argv)):
            # taken in between by an invocation that does not take part in our guard
            # (another host): it holds the folder now
            try:
                other = read_record(root) or {}
            except ValueError as exc:
                raise Locked(unreadable_message(str(exc))) from None
            raise Locked(locked_message(other))
        return removed


def release(root: Path, me: Process | None = None) -> bool:
    """Remove the record if this process holds it (never another invocation's)."""
    me = me or this_process()
    with _guard(root):
        try:
            record = read_record(root)
            if record is None or owner_of(record) != me:
                return False
        except (KeyError, TypeError, ValueError):
            return False
        (root / RECORD).unlink(missing_ok=True)
        return True


def hold(root: Path, argv: Sequence[str]) -> str | None:
    """:func:`acquire`, and :func:`release` when this process exits (success, error, Ctrl-C,
    SIGTERM while jobs run: Snakemake turns it into a graceful stop)."""
    me = this_process()
    try:
        removed = acquire(root, argv, me)
    except OSError as exc:
        where = exc.filename or RECORD
        raise Locked(f"cannot write the lock record {where}: {exc.strerror}") from None
    atexit.register(release, root.resolve(), me)
    return removed


def unlock(root: Path) -> list[Path]:
    """What ``snakemake --unlock`` clears besides Snakemake's own lock files: the record."""
    path = root / RECORD
    if path.exists():
        path.unlink(missing_ok=True)
        return [path]
    return []
