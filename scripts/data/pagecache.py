"""The page cache and a run's dataset: evict its files before a run, and measure how much of it
is resident just before the run starts.

NVIDIA's run.sub drops every cache before each run (``sync; echo 3 > /proc/sys/vm/drop_caches``
in a privileged container), so each run reads its data from disk. Without that, run 1 reads
the dataset from disk and the later runs from memory: a bias wherever input is a bottleneck.

- :func:`evict` asks the kernel to drop the cached pages of each file
  (``posix_fadvise(POSIX_FADV_DONTNEED)``): no root and no privileged container needed, and
  only the dataset's pages go (the rest of the machine's cache stays). Dirty pages are not
  dropped by it; the dataset's files are read-only, so they have none.
- :func:`drop_caches` is run.sub's way (the whole machine's clean caches), for root only.
- :func:`residency` counts the resident pages of each file with ``mincore(2)`` on a read-only
  mapping (through ctypes: Python's ``mmap`` does not expose it). Reading it does not fault
  pages in.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PAGE = mmap.PAGESIZE
# glibc's soname first: ctypes.util.find_library runs ldconfig (9 ms of every run's start)
try:
    _LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:  # another C library
    _LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_LIBC.mmap.restype = ctypes.c_void_p
_LIBC.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_LIBC.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_LIBC.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
_MAP_FAILED = ctypes.c_void_p(-1).value


class PageCacheError(OSError):
    """The page cache could not be read or changed as asked; the message says which file."""


@dataclass(frozen=True)
class Residency:
    """How much of a set of files was in the page cache."""

    files: int
    bytes: int
    resident_bytes: int  # whole pages: a resident last page counts as the file's remainder

    @property
    def fraction(self) -> float:
        return self.resident_bytes / self.bytes if self.bytes else 0.0

    def to_meta(self) -> dict[str, Any]:
        return {**asdict(self), "fraction": round(self.fraction, 6)}


def files_of(root: Path) -> list[Path]:
    """Every regular file under ``root`` (or ``root`` itself), symlinks not followed."""
    if root.is_file():
        return [root]
    return sorted(
        Path(d) / f for d, _, names in os.walk(root) for f in names if (Path(d) / f).is_file()
    )


def evict(paths: Iterable[Path]) -> int:
    """Drop the cached pages of every file (written back first, so that a file written just
    before is evicted too); returns how many files were advised."""
    n = 0
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            raise PageCacheError(f"cannot open {path} to evict it: {exc.strerror}") from None
        try:
            # DONTNEED drops clean pages only: a dataset unpacked just before the first run
            # is still dirty (written back after vm.dirty_expire_centisecs, 30 s), so write it
            # back first (a no-op for clean files)
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
        n += 1
    return n


def _resident_pages(fd: int, size: int) -> int:
    pages = (size + PAGE - 1) // PAGE
    addr = _LIBC.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    if addr in (None, _MAP_FAILED):
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    try:
        vec = (ctypes.c_ubyte * pages)()
        if _LIBC.mincore(addr, size, vec) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return sum(b & 1 for b in vec)
    finally:
        _LIBC.munmap(addr, size)


def residency(paths: Iterable[Path]) -> Residency:
    """The resident share of the files' bytes (an empty file has none)."""
    files = total = resident = 0
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            message = f"cannot open {path} to read its residency: {exc.strerror}"
            raise PageCacheError(message) from None
        try:
            size = os.fstat(fd).st_size
            pages = _resident_pages(fd, size) if size else 0
        except OSError as exc:
            raise PageCacheError(f"cannot read the residency of {path}: {exc.strerror}") from None
        finally:
            os.close(fd)
        files += 1
        total += size
        resident += min(size, pages * PAGE)
    return Residency(files, total, resident)


def drop_caches(proc: Path = Path("/proc/sys/vm/drop_caches")) -> None:
    """run.sub's ``sync; echo 3 > /proc/sys/vm/drop_caches`` (root only): every clean page of
    the machine's page cache, dentries and inodes."""
    os.sync()
    try:
        proc.write_text("3\n")
    except OSError as exc:
        raise PageCacheError(
            f"cannot drop the page cache ({proc}: {exc.strerror}); it needs root on the host, "
            "not in a container: use cache: cold (the dataset's files only) instead"
        ) from None
