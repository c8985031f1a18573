"""A published result tree is data, never paths to follow.

git stores symbolic links, so a cloned ``training_results`` repository, or any tree someone
hands you, can hold ``result_3.txt -> /home/you/.ssh/id_rsa``, a link to a FIFO (an import that
waits forever), to ``/dev/zero`` (a core burnt forever) or a link loop. Every file the import
reads from such a tree (a result log, ``scaling.json``, ``systems/<system>.json``, the power
files of :mod:`scripts.mlperf.power`) goes through this module:

- only a **regular file** is read: its ``lstat`` must say so before it is opened, the open
  follows no link (``O_NOFOLLOW``) and never blocks (``O_NONBLOCK``), and the opened file's
  ``fstat`` must say so again (a file swapped for a FIFO in between is refused too). A link is
  refused even when it points inside the tree: a published folder has no reason to hold one.
- its **size is capped** (``max_bytes``: :data:`MAX_LOG_BYTES` for a log, :data:`MAX_JSON_BYTES`
  for a JSON description), checked from ``fstat`` before reading and again while reading;
- a copy is read with a **time bound** (:data:`READ_DEADLINE_S`; a file on a stalled network
  mount is given up on).

Each refusal is a :class:`RefusedFile` (a ``ValueError``) whose message names the file and
why; the import turns it into a named log problem of that run, and the folder's other runs
are imported.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from pathlib import Path

MAX_LOG_BYTES = 512 << 20  # a published log (NVIDIA's largest v5.x logs are a few MB)
MAX_JSON_BYTES = 1 << 20  # scaling.json, systems/<system>.json
READ_DEADLINE_S = 120.0  # for reading one published file
BLOCK_BYTES = 4 << 20
_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class RefusedFile(ValueError):
    """A published file that is not read: not a regular file, too large, or too slow."""


def kind_of(mode: int) -> str:
    """What a file of ``mode`` is, in words (``a FIFO``)."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _open(path: Path, max_bytes: int, name: str, what: str) -> tuple[int, int]:
    """A descriptor of the regular file ``path`` and its size (see the module docstring);
    messages call it ``name``, and a file too large ``what`` may not be."""
    try:
        mode = os.lstat(path).st_mode
    except OSError as exc:
        raise RefusedFile(f"{name} cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise RefusedFile(f"{name} is {kind_of(mode)}, not a regular file: not read")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RefusedFile(f"{name} is a symbolic link, not a regular file: not read") from None
        raise RefusedFile(f"{name} cannot be read: {exc.strerror or exc}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise RefusedFile(f"{name} is {kind_of(st.st_mode)}, not a regular file: not read")
    if st.st_size > max_bytes:
        os.close(fd)
        raise RefusedFile(
            f"{name} has {st.st_size} bytes, more than {max_bytes} {what} may have: not read"
        )
    return fd, st.st_size


def read_regular(
    path: Path,
    max_bytes: int = MAX_JSON_BYTES,
    *,
    name: str | None = None,
    what: str = "a published file of its kind",
) -> bytes:
    """The bytes of the regular file ``path`` of at most ``max_bytes``; RefusedFile else
    (its message calls the file ``name``, by default its path)."""
    name = str(path) if name is None else name
    fd, _ = _open(Path(path), max_bytes, name, what)
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise RefusedFile(f"{name} grew past {max_bytes} bytes while read: not read")
    return data


def copy_regular(
    path: Path,
    dest: Path,
    max_bytes: int = MAX_LOG_BYTES,
    deadline_s: float = READ_DEADLINE_S,
) -> str:
    """Copy the regular file ``path`` to ``dest`` (through ``dest``.tmp, then renamed) and
    return the sha256 of what was copied; RefusedFile for a file that is not regular, larger
    than ``max_bytes`` or not read within ``deadline_s`` (nothing is left at ``dest`` then)."""
    fd, _ = _open(Path(path), max_bytes, str(path), "a published log")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    sha = hashlib.sha256()
    size = 0
    start = time.monotonic()
    try:
        with os.fdopen(fd, "rb") as src, tmp.open("wb") as out:
            while block := src.read(BLOCK_BYTES):
                size += len(block)
                if size > max_bytes:
                    raise RefusedFile(f"{path} grew past {max_bytes} bytes while read: not read")
                if time.monotonic() - start > deadline_s:
                    raise RefusedFile(f"{path} was not read within {deadline_s:g} s: not read")
                sha.update(block)
                out.write(block)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return sha.hexdigest()
