"""One walk of a mount, counting files and bytes per folder as NVIDIA's mountcheck counts them.

:mod:`scripts.data.mountcheck` reads every row of an expected-mounts.csv from this one walk
(a mount of 1.2 million files is walked once, not once per row). The counts follow
mlperf-common's ``scan``: a file is 1 file of its ``st_size``; a folder is every file below it,
recursively, and the sum of their sizes (folders add nothing); names starting with ``.`` are
neither listed nor counted; each folder's entries come in name order, files and folders
together, and a folder after what is below it. Unlike mountcheck, a link is followed only
where it resolves inside the mount, and not to a folder that holds it (it would loop); what
is not counted is recorded with why. os.scandir and a stack: no recursion limit.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scripts.data.errors import DatasetError

ROOT = "."  # the relative_path of the mount itself
UNCOUNTED_KEPT = 1000  # uncounted entries a walk remembers beyond the rows asked


class MountCheckError(DatasetError):
    """An expected-mounts.csv that cannot be read, or a mount that cannot be walked."""


@dataclass(frozen=True)
class Found:
    """What the walk found at one path: its type, counts, and entries below it not counted."""

    type: str
    num_files: int
    num_bytes: int
    uncounted: int = 0


@dataclass
class Walk:
    """One mount, walked once: the kept paths in mountcheck's order, and why each entry that
    was not counted was not (a link out of the mount, a fifo, ...), by relative path."""

    found: dict[str, Found] = field(default_factory=dict)
    uncounted: dict[str, str] = field(default_factory=dict)


@dataclass
class _Folder:
    rel: str
    path: str
    real: str  # its resolved path: a link to a folder on this chain would loop
    # (name, size or -1 for a folder, its real path), sorted, popped from the end
    items: list[tuple[str, int, str]] = field(default_factory=list)
    num_files: int = 0
    num_bytes: int = 0
    uncounted: int = 0


def _child(rel: str, name: str) -> str:
    return name if rel == ROOT else f"{rel}/{name}"


def _inside(real: str, real_root: str) -> bool:
    return real == real_root or real.startswith(real_root.rstrip("/") + "/")


def _link(entry: os.DirEntry[str], real_root: str, chain: set[str]) -> tuple[int, str] | str:
    """A link inside the mount as (size or -1 for a folder, real path); else why it is not
    followed. mountcheck stats through links; it never asks where they lead."""
    real = os.path.realpath(entry.path)
    if not _inside(real, real_root):
        return f"a link out of the mount (to {os.readlink(entry.path)}), not followed"
    try:
        st = os.stat(entry.path)
    except OSError:
        return f"a broken link (to {os.readlink(entry.path)})"
    if stat.S_ISDIR(st.st_mode):
        return (
            f"a link to a folder that holds it ({real}), not followed"
            if real in chain
            else (-1, real)
        )
    if stat.S_ISREG(st.st_mode):
        return st.st_size, real
    return "a link to something that is neither a file nor a folder"


def _what(
    entry: os.DirEntry[str], real_root: str, folder: _Folder, chain: set[str]
) -> tuple[int, str] | str:
    """One entry as (size or -1 for a folder, real path), or why it is not counted."""
    if entry.is_symlink():
        return _link(entry, real_root, chain)
    if entry.is_dir(follow_symlinks=False):
        return -1, f"{folder.real}/{entry.name}"
    if entry.is_file(follow_symlinks=False):
        return entry.stat(follow_symlinks=False).st_size, ""
    return "neither a file nor a folder (a fifo, socket or device)"


def _open(
    folder: _Folder, real_root: str, keep: Callable[[str], bool], walk: Walk, chain: set[str]
) -> _Folder:
    """Scan one folder: its files are counted now (listed only when kept), its folders queued
    in name order, its uncounted entries recorded."""
    rel, path = folder.rel, folder.path
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue  # hidden: mountcheck neither lists nor counts it
                child = _child(rel, entry.name)
                what = _what(entry, real_root, folder, chain)
                if isinstance(what, str):
                    if keep(child) or len(walk.uncounted) < UNCOUNTED_KEPT:
                        walk.uncounted[child] = what
                    folder.uncounted += 1
                elif what[0] >= 0:
                    folder.num_files += 1
                    folder.num_bytes += what[0]
                    if keep(child):
                        folder.items.append((entry.name, what[0], what[1]))
                else:
                    folder.items.append((entry.name, -1, what[1]))
    except OSError as exc:
        raise MountCheckError(f"{path}: cannot read the folder: {exc.strerror or exc}") from None
    folder.items.sort(reverse=True)  # popped from the end: name order
    return folder


def walk_mount(root: Path, keep: Callable[[str], bool] = lambda rel: True) -> Walk:
    """Walk ``root`` once (os.scandir, a stack, no recursion) and count every folder's files;
    ``found`` holds the paths ``keep`` accepts. A million files are one pass and one lstat
    each; only the kept rows are held."""
    walk = Walk()
    real_root = os.path.realpath(root)
    try:
        st = os.stat(real_root)
    except OSError as exc:
        raise MountCheckError(f"{root}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(st.st_mode):
        if stat.S_ISREG(st.st_mode) and keep(ROOT):
            walk.found[ROOT] = Found("file", 1, st.st_size)
        return walk
    chain = {real_root}
    stack = [_open(_Folder(ROOT, real_root, real_root), real_root, keep, walk, chain)]
    while stack:
        top = stack[-1]
        if top.items:
            name, size, real = top.items.pop()
            rel = _child(top.rel, name)
            if size >= 0:
                walk.found[rel] = Found("file", 1, size)
            else:
                chain.add(real)
                folder = _Folder(rel, f"{top.path}/{name}", real)
                stack.append(_open(folder, real_root, keep, walk, chain))
            continue
        stack.pop()
        chain.discard(top.real)
        if keep(top.rel):
            walk.found[top.rel] = Found("dir", top.num_files, top.num_bytes, top.uncounted)
        if stack:
            stack[-1].num_files += top.num_files
            stack[-1].num_bytes += top.num_bytes
            stack[-1].uncounted += top.uncounted
    return walk
