"""Unpacking a dataset's archives (.tar, .tar.gz, .tgz, .zip) safely: every member is checked
before anything is written, and what is written is counted.

Before the first byte is written, every member of every archive of the dataset is checked, as
one tree (several archives unpack into one folder):

- its path stays inside the folder: no absolute path, no ``..``, nothing written through a
  member that is a link (or under one that is a file);
- it is a regular file, a folder or a link: a FIFO, a character or block device (or any other
  kind) is refused;
- a symbolic link's target, taken from the link's folder, stays inside, also when it goes
  through another link with ``..``; a hard link's target is, as tar reads it, a path from the
  archive's root, and must be a regular file that comes before it in the same archive;
- a name that appears twice must name the same kind (a folder twice, or a newer file);
- the sizes the members declare add up to at most the limit (:func:`unpack_limit`): the
  configured ``max_unpacked_bytes``, or by default 100 times the archives' own size, at least
  1 GiB (a 2 MB .tar.gz that would unpack to 2 GiB is refused); and to at most the free space
  of the folder's disk.

While writing, each file's bytes are counted again: a member that brings more bytes than its
header declared, or a total over the limit, stops the unpacking (the standard library's
readers stop at the declared size, so this is a second line of defence, not the first).

Every refusal is one line naming the archive and the member (:class:`ArchiveError`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

CHUNK = 1 << 20
# the default limit: UNPACK_RATIO times the archives' size, at least UNPACK_FLOOR bytes
UNPACK_RATIO = 100
UNPACK_FLOOR = 1 << 30
LIMIT_KEY = "dataset.max_unpacked_bytes"
# a zip member that is a symbolic link holds its target; a longer one is no link
MAX_LINK_BYTES = 4096
# what the readers raise on a damaged archive (gzip's BadGzipFile is an OSError)
READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, zlib.error, EOFError, OSError,
               NotImplementedError, RuntimeError, ValueError)  # fmt: skip


KIND_WORDS = {"file": "file", "dir": "folder", "symlink": "symbolic link", "hardlink": "hard link"}


class ArchiveError(Exception):
    """An archive that is refused, or cannot be read or written (one line: archive, member,
    why)."""


@dataclass(frozen=True)
class Member:
    """One member of an archive, as the checks see it."""

    raw: str  # its name in the archive, for messages
    path: str  # normalized: relative, '/'-separated, no '.' or '..' ('' for the root)
    kind: str  # 'file', 'dir', 'symlink' or 'hardlink'
    size: int = 0  # declared bytes (files only)
    link: str = ""  # a link's target as written (a hard link's: from the archive's root)
    mode: int = 0o644
    mtime: float | None = None
    ref: Any = None  # the reader's own record (TarInfo, ZipInfo)


@dataclass
class Archive:
    """An open archive: its members (in order), and a way to read a file member's bytes."""

    path: Path
    members: list[Member]
    handle: Any  # TarFile or ZipFile

    def open(self, member: Member) -> IO[bytes]:
        if isinstance(self.handle, zipfile.ZipFile):
            return self.handle.open(member.ref)
        src = self.handle.extractfile(member.ref)
        if src is None:
            raise ArchiveError(f"{self.path}: member {member.raw!r} has no data")
        return src  # type: ignore[no-any-return]


def archive_bytes(archives: Sequence[Path]) -> int:
    return sum(p.stat().st_size for p in archives)


def unpack_limit(archives_size: int, configured: int | None) -> tuple[int, str]:
    """The most bytes a dataset's archives (``archives_size`` bytes together) may unpack to,
    and the rule that sets it (for messages)."""
    if configured is not None:
        return configured, f"config {LIMIT_KEY}"
    limit = max(UNPACK_FLOOR, UNPACK_RATIO * archives_size)
    return limit, (
        f"by default {UNPACK_RATIO} x the archives' {archives_size} bytes, at least "
        f"{UNPACK_FLOOR} bytes; set {LIMIT_KEY} to allow more"
    )


# ---------------------------------------------------------------------------------------------
# Reading the members (headers only).


def _normalized(name: str) -> tuple[str, bool]:
    """(the path relative to the folder, whether it stays inside it lexically)."""
    if name.startswith("/") or name.startswith("\\") or (len(name) > 1 and name[1] == ":"):
        return name, False
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return "/".join(parts), ".." not in parts


SPECIAL = {
    tarfile.CHRTYPE: "a character device",
    tarfile.BLKTYPE: "a block device",
    tarfile.FIFOTYPE: "a FIFO",
}


def _tar_member(archive: Path, m: tarfile.TarInfo) -> Member:
    if m.isreg():
        kind = "file"
    elif m.isdir():
        kind = "dir"
    elif m.issym():
        kind = "symlink"
    elif m.islnk():
        kind = "hardlink"
    else:
        what = SPECIAL.get(m.type, f"a member of tar type {m.type!r}")
        raise ArchiveError(
            f"{archive}: member {m.name!r} is {what}, not a regular file, folder or link; a "
            "dataset holds none, so nothing was unpacked"
        )
    path, _ = _normalized(m.name)
    size = m.size if kind == "file" else 0
    return Member(m.name, path, kind, size, m.linkname, m.mode, m.mtime, m)


def _zip_member(archive: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> Member:
    mode = info.external_attr >> 16
    kind_bits = stat.S_IFMT(mode)
    path, _ = _normalized(info.filename)
    if info.flag_bits & 0x1:
        raise ArchiveError(
            f"{archive}: member {info.filename!r} is encrypted; nothing was unpacked"
        )
    if info.is_dir() or kind_bits == stat.S_IFDIR:
        return Member(info.filename, path, "dir", ref=info)
    perm = stat.S_IMODE(mode) or 0o644
    if kind_bits in (0, stat.S_IFREG):
        return Member(info.filename, path, "file", info.file_size, "", perm, None, info)
    if kind_bits == stat.S_IFLNK and info.file_size <= MAX_LINK_BYTES:
        target = zf.read(info).decode("utf-8", "surrogateescape")
        return Member(info.filename, path, "symlink", 0, target, ref=info)
    what = {
        stat.S_IFIFO: "a FIFO",
        stat.S_IFCHR: "a character device",
        stat.S_IFBLK: "a block device",
        stat.S_IFSOCK: "a socket",
        stat.S_IFLNK: "a link of more than 4096 bytes",
    }.get(kind_bits, f"of file type {kind_bits:o}")
    raise ArchiveError(
        f"{archive}: member {info.filename!r} is {what}, not a regular file, folder or link; "
        "a dataset holds none, so nothing was unpacked"
    )


@contextlib.contextmanager
def open_archive(
    archive: Path, on_member: Callable[[Member], None] = lambda m: None
) -> Iterator[Archive]:
    """``archive`` opened, with every member read (headers only, nothing written), each given
    to ``on_member`` as it is read: a check that raises stops the reading there (a tar's next
    header lies after the member's data, so a member that declares 2 GiB is refused before
    2 GiB are decompressed to find the next one)."""
    try:
        if zipfile.is_zipfile(archive):
            handle: Any = zipfile.ZipFile(archive)
        else:
            handle = tarfile.open(archive)
    except (*READ_ERRORS,) as exc:
        raise ArchiveError(
            f"{archive}: not a readable .tar, .tar.gz or .zip archive ({_words(exc)})"
        ) from None
    with handle:
        members: list[Member] = []
        try:
            if isinstance(handle, zipfile.ZipFile):
                for info in handle.infolist():
                    members.append(_zip_member(archive, handle, info))
                    on_member(members[-1])
            else:
                for tarinfo in handle:  # header by header (getmembers would read them all)
                    members.append(_tar_member(archive, tarinfo))
                    on_member(members[-1])
        except ArchiveError:
            raise
        except (*READ_ERRORS,) as exc:
            raise ArchiveError(f"{archive}: cannot be read ({_words(exc)})") from None
        yield Archive(archive, members, handle)


def _words(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200] + ("..." if len(text) > 200 else "")


# ---------------------------------------------------------------------------------------------
# The checks, before anything is written.


@dataclass
class Tree:
    """What the archives put in the folder: path -> kind ('dir' also for the folders that
    members imply)."""

    dest: Path  # as messages name it (the tree, not the temporary folder it is made in)
    kinds: dict[str, str] = field(default_factory=dict)
    total: int = 0  # declared bytes of the files

    implied: set[str] = field(default_factory=set)  # folders no member names, only implies

    def add(self, path: str, kind: str) -> None:
        parts = path.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix not in self.kinds:
                self.kinds[prefix] = "dir"
                self.implied.add(prefix)
        self.implied.discard(path)
        self.kinds[path] = kind

    def not_a_folder_above(self, path: str) -> str | None:
        """The first folder of ``path`` (a proper prefix) that is a link or a file."""
        parts = path.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if self.kinds.get(prefix, "dir") != "dir":
                return prefix
        return None


def _symlink_escapes(tree: Tree, m: Member) -> bool:
    """Whether a symbolic link's target leaves the folder: lexically, from the link's folder,
    or by stepping back with '..' after a path that is itself a link (whose '..' is not the
    lexical one)."""
    if not m.link or m.link.startswith("/"):
        return True
    stack = m.path.split("/")[:-1]
    through_link = False
    for part in m.link.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not stack or through_link:
                return True
            stack.pop()
            continue
        stack.append(part)
        through_link = through_link or tree.kinds.get("/".join(stack)) == "symlink"
    return False


def _first_pass(archive: Path, m: Member, tree: Tree, files_here: set[str]) -> None:
    """Path, kind, repetition and hard-link checks, in archive order (a hard link's target
    must come before it)."""
    name, dest = m.raw, tree.dest
    path, inside = _normalized(m.raw)
    if not inside or (not path and m.kind != "dir"):
        raise ArchiveError(f"{archive}: member {name!r} would be written outside {dest}")
    # a folder only implied by earlier members is no repetition: if this member is no folder,
    # the second pass names those members (written through a link, or under a file)
    before = tree.kinds.get(path) if path and path not in tree.implied else None
    if before is not None and before != m.kind:
        raise ArchiveError(
            f"{archive}: member {name!r} appears twice, as a {KIND_WORDS[before]} and as a "
            f"{KIND_WORDS[m.kind]}; nothing was unpacked"
        )
    if before is not None and m.kind in ("symlink", "hardlink"):
        raise ArchiveError(f"{archive}: link {name!r} appears twice; nothing was unpacked")
    if m.kind == "hardlink":
        target, ok = _normalized(m.link)
        if not ok or not target:
            raise ArchiveError(
                f"{archive}: hard link {name!r} -> {m.link!r} escapes {dest} (a hard link's "
                "target is a path from the archive's root)"
            )
        if target not in files_here or tree.kinds.get(target) != "file":
            raise ArchiveError(
                f"{archive}: hard link {name!r} -> {m.link!r} names no regular file before it "
                "in the archive; nothing was unpacked"
            )
    if path:
        tree.add(path, m.kind)
    if m.kind == "file":
        files_here.add(path)
        tree.total += m.size


def _second_pass(archive: Path, m: Member, tree: Tree) -> None:
    """Checks against the whole tree (a link may come after what it affects): nothing is
    written through a link or under a file, and no symbolic link leads out."""
    above = tree.not_a_folder_above(m.path) if m.path else None
    if above is not None:
        what = "link" if "link" in tree.kinds[above] else "file"
        raise ArchiveError(
            f"{archive}: member {m.raw!r} would be written through {above!r}, which the "
            f"archives make a {what}; nothing was unpacked"
        )
    if m.kind == "symlink" and _symlink_escapes(tree, m):
        raise ArchiveError(f"{archive}: link {m.raw!r} -> {m.link!r} escapes {tree.dest}")


@dataclass
class Checks:
    """The checks of the members of a dataset's archives, which unpack into ``tree.dest``
    together: each member as it is read (:meth:`member`), then all of them (:meth:`finish`),
    before anything is written."""

    tree: Tree
    limit: int
    rule: str

    def member(self, archive: Path, files_here: set[str]) -> Callable[[Member], None]:
        def check(m: Member) -> None:
            _first_pass(archive, m, self.tree, files_here)
            if self.tree.total > self.limit:
                raise ArchiveError(
                    f"{archive}: member {m.raw!r} ({m.size} bytes) takes what the archives "
                    f"declare to {self.tree.total} bytes, over the limit of {self.limit} "
                    f"bytes ({self.rule}); nothing was unpacked"
                )

        return check

    def finish(self, archives: Sequence[Archive]) -> int:
        """The checks that need every member; returns the bytes they declare."""
        for archive in archives:
            for m in archive.members:
                _second_pass(archive.path, m, self.tree)
        dest, total = self.tree.dest, self.tree.total
        free = shutil.disk_usage(_existing(dest)).free  # the tree's disk: the folder's
        if total > free:
            raise ArchiveError(
                f"{', '.join(str(a.path) for a in archives)}: the members declare {total} "
                f"bytes, but the disk of {dest} has {free} bytes free; nothing was unpacked"
            )
        return total


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


# ---------------------------------------------------------------------------------------------
# Writing, with every byte counted.


@dataclass
class Budget:
    """Bytes that may still be written before the limit."""

    limit: int
    rule: str
    written: int = 0


def _copy_member(src: IO[bytes], out: IO[bytes], m: Member, archive: Path, budget: Budget) -> None:
    """Copy one member's bytes, never more than it declared nor past the limit."""
    n = 0
    while chunk := src.read(CHUNK):
        n += len(chunk)
        budget.written += len(chunk)
        if n > m.size:
            raise ArchiveError(
                f"{archive}: member {m.raw!r} holds more than the {m.size} bytes its header "
                "declares; unpacking stopped"
            )
        if budget.written > budget.limit:
            raise ArchiveError(
                f"{archive}: member {m.raw!r} took what was unpacked over the limit of "
                f"{budget.limit} bytes ({budget.rule}); unpacking stopped"
            )
        out.write(chunk)


def _write_file(archive: Archive, m: Member, target: Path, budget: Budget) -> None:
    target.unlink(missing_ok=True)  # a newer copy of a file: tar's rule, the last one wins
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out, archive.open(m) as src:
        _copy_member(src, out, m, archive.path, budget)
    os.chmod(target, (m.mode & 0o755) | 0o600)
    if m.mtime is not None:
        os.utime(target, (m.mtime, m.mtime))


def _write_member(archive: Archive, m: Member, dest: Path, budget: Budget) -> None:
    target = dest / m.path if m.path else dest
    if m.kind == "dir":
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    # the checks keep every member out of links; this keeps it so if the folder changed
    real = os.path.realpath(target.parent)
    if real != str(dest) and not real.startswith(str(dest) + os.sep):
        raise ArchiveError(f"{archive.path}: member {m.raw!r} would be written outside {dest}")
    if m.kind == "file":
        _write_file(archive, m, target, budget)
    elif m.kind == "symlink":
        os.symlink(m.link, target)
    else:
        os.link(dest / _normalized(m.link)[0], target, follow_symlinks=False)


def extract(archive: Archive, dest: Path, budget: Budget) -> list[str]:
    """Write the (checked) members of ``archive`` into ``dest``; return their names."""
    dest = Path(os.path.realpath(dest))
    for m in archive.members:
        try:
            _write_member(archive, m, dest, budget)
        except ArchiveError:
            raise
        except (*READ_ERRORS,) as exc:
            raise ArchiveError(
                f"{archive.path}: member {m.raw!r} cannot be unpacked ({_words(exc)}); "
                "unpacking stopped"
            ) from None
    return [m.raw for m in archive.members]


def unpack(
    archives: Sequence[Path],
    dest: Path,
    configured_limit: int | None = None,
    shown: Path | None = None,
) -> list[str]:
    """Check every member of ``archives`` (unpacked into ``dest`` together), then unpack them
    in order; return the members' names. Raises :class:`ArchiveError` (one line; it names
    ``dest`` as ``shown``, e.g. the tree that a temporary ``dest`` becomes)."""
    limit, rule = unpack_limit(archive_bytes(archives), configured_limit)
    dest.mkdir(parents=True, exist_ok=True)
    checks = Checks(Tree(shown or dest), limit, rule)
    with contextlib.ExitStack() as stack:
        opened = [stack.enter_context(open_archive(a, checks.member(a, set()))) for a in archives]
        checks.finish(opened)
        budget = Budget(limit, rule)
        names: list[str] = []
        for archive in opened:
            names += extract(archive, dest, budget)
        return names
