"""One dataset, made or changed by one process at a time, also when campaigns share a data_dir.

Two campaigns (two snakemake invocations in different working folders) may point ``data_dir``
at the same folder. Each would fetch, verify and unpack the same dataset, and each removes what
it is about to make: Snakemake deletes a job's outputs before it runs it, ``prepare`` removes
``dataset.tmp``, a fetch takes over ``<file>.part``. So whoever makes or changes
``<data_dir>/<benchmark>/`` holds its lock, ``<data_dir>/<benchmark>.lock`` (``flock``: it
works across processes, and the kernel releases it when its holder dies, ``kill -9``
included). The file records the holder: pid, host, working folder, what it does and since when;
the holder empties it before it lets go. Never delete a ``.lock`` file while a campaign runs.

- A campaign takes the lock when it loads (``scripts/campaign/preflight.py``), before it looks at
the
  dataset, and keeps it until the dataset is complete (its tree's manifest is written) or it
  ends. Another campaign that loads meanwhile waits, printing one line naming the holder, so
  it sees the dataset complete and plans no job that would remove it; or it stops in one line
  after ``data_lock_wait_s`` (config), having changed nothing.
- The dataset commands (``python -m scripts dataset fetch|verify|unpack|script --lock ...``)
  go on under their campaign's lock: the campaign sets :data:`TOKEN_ENV` for its jobs and
  records the same token in the lock file. A command run by anyone else (by hand, or a job
  after its campaign let go) takes the lock itself, or waits for it the same way.
- A job that goes on under its campaign's lock holds ``<benchmark>.jobs.lock`` shared, and
  whoever takes the lock takes that one exclusively before doing anything: so the jobs of a
  campaign killed with ``kill -9`` (which go on running) finish before the next holder
  starts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOKEN_ENV = "MLPERF_DATA_LOCK_TOKEN"  # the campaign whose lock its jobs go on under
WAIT_KEY = "data_lock_wait_s"
DEFAULT_WAIT_S = 86400.0
POLL_S = 0.2  # how often a waiting process tries again

Say = Callable[[str], None]


class DataLocked(Exception):
    """The lock was not free within the wait (the message names the holder)."""


def lock_path(data_dir: str | Path, benchmark: str) -> Path:
    """The lock of ``<data_dir>/<benchmark>/``: beside it, so removing the folder keeps it."""
    return Path(data_dir) / f"{benchmark}.lock"


def _jobs_path(lock: Path) -> Path:
    return lock.with_name(lock.name.removesuffix(".lock") + ".jobs.lock")


def holder_words(record: dict[str, Any] | None) -> str:
    """'pid 12 on host-a, working folder /x, since ..., for fetching a.tar' (or what is known)."""
    if not record:
        return "a process that has not recorded itself (yet)"
    return (
        f"pid {record.get('pid', '?')} on {record.get('host', '?')}, working folder "
        f"{record.get('cwd', '?')}, since {record.get('since', '?')}, for "
        f"{record.get('what', 'an unknown task')}"
    )


def read_record(lock: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(lock.read_text())
    except (OSError, ValueError):
        return None  # empty (free, or its holder is writing it) or not ours
    return data if isinstance(data, dict) else None


def _try(fd: int, how: int) -> bool:
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _open(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)


@dataclass
class _Waiting:
    """One wait: says once who holds the lock (again when that changes), stops at the end."""

    lock: Path
    wait_s: float | None
    say: Say
    started: float = field(default_factory=time.monotonic)
    shown: Any = None

    def tick(self, record: dict[str, Any] | None, waiting_for: str = "") -> None:
        key = (record or {}).get("token"), (record or {}).get("pid"), waiting_for
        elapsed = time.monotonic() - self.started
        if self.wait_s is not None and elapsed >= self.wait_s:
            raise DataLocked(
                f"{self.lock} is still held after {self.wait_s:g} s by "
                f"{waiting_for or holder_words(record)}: nothing was changed; run again once "
                f"it is done, or raise {WAIT_KEY}"
            )
        if key != self.shown and (record or waiting_for or elapsed > 1):
            limit = "without a limit" if self.wait_s is None else f"up to {self.wait_s:g} s"
            self.say(
                f"waiting for {self.lock}: held by {waiting_for or holder_words(record)} "
                f"(waits {limit}: config {WAIT_KEY})"
            )
            self.shown = key
        time.sleep(POLL_S)


@dataclass
class Held:
    """A lock this process holds (``fd``), or goes on under (``jobs_fd`` shared, ``fd`` None)."""

    lock: Path
    fd: int | None
    jobs_fd: int | None = None

    def release(self) -> None:
        """Empty the record (so nobody takes a stale one for its holder), then let go."""
        with _REGISTRY_GUARD:
            if _HELD_HERE.get(_key(self.lock)) is self:
                del _HELD_HERE[_key(self.lock)]
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)
            self.fd = None
        if self.jobs_fd is not None:
            os.close(self.jobs_fd)
            self.jobs_fd = None


def _record(fd: int, what: str, token: str) -> None:
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "cwd": os.getcwd(),
        "what": what,
        "since": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "token": token,
    }
    data = (json.dumps(record) + "\n").encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


def _after_orphans(lock: Path, waiting: _Waiting) -> None:
    """Wait until no job goes on under an earlier holder (a campaign killed meanwhile)."""
    fd = _open(_jobs_path(lock))
    try:
        while not _try(fd, fcntl.LOCK_EX):
            waiting.tick(None, "the dataset jobs of an earlier holder (still running)")
    finally:
        os.close(fd)  # released at once: this holder's own jobs take it shared


# the locks this process holds through take(), by path: flock is per open file, so a second
# take() of the same lock in this process would wait for itself
_HELD_HERE: dict[str, Held] = {}
_REGISTRY_GUARD = threading.Lock()


def _key(lock: Path) -> str:
    return os.path.realpath(lock)


def take(lock: Path, what: str, wait_s: float | None, say: Say, token: str | None = None) -> Held:
    """Take ``lock`` for ``what`` (waiting up to ``wait_s``; None: as long as it takes), with
    ``token`` (default: a new one) recorded for the jobs that may go on under it. A lock this
    process holds already is that hold."""
    with _REGISTRY_GUARD:
        mine = _HELD_HERE.get(_key(lock))
    if mine is not None:
        return mine
    fd = _open(lock)
    waiting = _Waiting(lock, wait_s, say)
    try:
        while not _try(fd, fcntl.LOCK_EX):
            waiting.tick(read_record(lock))
        _record(fd, what, token or uuid.uuid4().hex)
        _after_orphans(lock, waiting)
    except BaseException:
        os.close(fd)
        raise
    held = Held(lock, fd)
    with _REGISTRY_GUARD:
        _HELD_HERE[_key(lock)] = held
    return held


def _join(lock: Path, token: str, waiting: _Waiting) -> Held | None:
    """Go on under the lock held by the campaign of ``token`` (its shared jobs lock held), or
    None where another holds it or it is free."""
    jobs = _open(_jobs_path(lock))
    while not _try(jobs, fcntl.LOCK_SH):  # a new holder waits for its earlier jobs: brief
        waiting.tick(None, "a new holder that waits for earlier jobs")
    probe = _open(lock)
    try:
        held_by_someone = not _try(probe, fcntl.LOCK_EX)
    finally:
        os.close(probe)  # a successful probe lets go at once: the lock is free
    record = read_record(lock)
    if held_by_someone and record is not None and record.get("token") == token:
        return Held(lock, None, jobs)
    os.close(jobs)
    return None


def for_command(lock: Path, what: str, wait_s: float | None, say: Say) -> Held:
    """The lock for one dataset command: go on under its campaign's (:data:`TOKEN_ENV`), or
    take it, waiting for any other holder."""
    token = os.environ.get(TOKEN_ENV)
    waiting = _Waiting(lock, wait_s, say)
    while True:
        if token:
            joined = _join(lock, token, waiting)
            if joined is not None:
                return joined
        fd = _open(lock)
        if _try(fd, fcntl.LOCK_EX):
            try:
                _record(fd, what, token or uuid.uuid4().hex)
                _after_orphans(lock, waiting)
            except BaseException:
                os.close(fd)
                raise
            return Held(lock, fd)
        os.close(fd)
        waiting.tick(read_record(lock))


@contextlib.contextmanager
def held_for_command(
    lock: Path | None, what: str, wait_s: float | None, say: Say
) -> Iterator[None]:
    """:func:`for_command` around a command's work (no lock: nothing)."""
    if lock is None:
        yield
        return
    held = for_command(lock, what, wait_s, say)
    try:
        yield
    finally:
        held.release()


def campaign_token() -> str:
    """This campaign's token, set for its jobs (one per snakemake process)."""
    token = os.environ.get(TOKEN_ENV)
    if not token:
        token = os.environ[TOKEN_ENV] = uuid.uuid4().hex
    return token


def release_when(held: Held, done: Callable[[], bool], every_s: float = 0.5) -> threading.Thread:
    """Let go of ``held`` as soon as ``done()`` (polled every ``every_s``), or when this
    process ends (the kernel lets go of it then)."""

    def watch() -> None:
        while not done():
            time.sleep(every_s)
        held.release()

    thread = threading.Thread(target=watch, name=f"release {held.lock}", daemon=True)
    thread.start()
    return thread
