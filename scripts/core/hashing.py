"""The workflow's hashes and atomic writes, written once (imports nothing from the package).

- :func:`file_sha256`: a file's sha256, read in blocks (never whole into memory);
- :func:`tree_sha256`: one sha256 over a folder's files (path, executable bit, content);
- :func:`canonical_json` / :func:`canonical_sha256`: the digest of a JSON value, independent of
  key order (sorted keys, compact separators, ``str()`` of what JSON cannot hold). The run
  fingerprints and the image inputs digest are these bytes: changing them would change every
  recorded fingerprint (tests/test_hashing.py pins one);
- :func:`write_atomic` / :func:`write_json`: a file written to a temporary file in the same
  folder and renamed over the target, so that a reader sees the old file or the new one, never
  a half-written one. ``fsync`` is off by default (as the workflow always wrote): a crash of
  the machine, not of a process, can lose the newest write, which the workflow redoes.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BLOCK = 1 << 20


def file_sha256(path: Path | str, block: int = BLOCK) -> str:
    """The sha256 of a file's content, read ``block`` bytes at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def tree_sha256(root: Path, exclude: Sequence[str] = (".git",)) -> str:
    """sha256 over every file below ``root``: relative path, executable bit and content (a
    symlink by its target), in sorted order. Names in ``exclude`` are skipped at any depth."""
    h = hashlib.sha256()
    entries: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in exclude)
        entries += [Path(dirpath) / f for f in filenames if f not in exclude]
    for path in sorted(entries, key=lambda p: p.relative_to(root).as_posix()):
        rel = path.relative_to(root).as_posix()
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            kind, digest = "l", hashlib.sha256(os.readlink(path).encode()).hexdigest()
        else:
            kind = "x" if st.st_mode & 0o111 else "f"
            digest = file_sha256(path)
        h.update(f"{rel}\0{kind}\0{digest}\n".encode())
    return h.hexdigest()


def canonical_json(data: Any) -> str:
    """``data`` as JSON with sorted keys and no spaces; values JSON cannot hold by ``str()``."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def canonical_sha256(data: Any) -> str:
    """The sha256 of :func:`canonical_json` (UTF-8)."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def write_atomic(path: Path, text: str, *, fsync: bool = False) -> None:
    """Write ``text`` to ``path`` (its folder made if missing) through a temporary file of a
    unique name beside it, renamed over ``path``; the temporary file never outlives a failure.
    The file gets the mode a plain write would (0666 less the umask)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(
    path: Path,
    data: Any,
    *,
    indent: int | None = 2,
    sort_keys: bool = False,
    fsync: bool = False,
) -> None:
    """``data`` as JSON (``indent``, ``sort_keys``) and a newline, written atomically."""
    write_atomic(path, json.dumps(data, indent=indent, sort_keys=sort_keys) + "\n", fsync=fsync)
