"""The unpacked tree (data/<benchmark>/dataset/), the folder the trainer reads, and its manifest.

The unpack job records every file of it (path, size, sha256, mtime_ns) in
data/<benchmark>/dataset.manifest.json, beside the tree, never inside it. The runner checks the
tree against it before each attempt (:func:`tree_problem`), and every invocation before it builds
its plan (:func:`scripts.data.restore.restore_tree`): size and mtime first, the sha256 only of a
file whose size or mtime differs. An edit that keeps a file's size and mtime (e.g. `touch -d`
after the edit) passes that cheap check; check-tree --full hashes every file. Files are made
read-only (directories are not, so `rm -rf` and re-unpacking work).
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scripts.core import formats
from scripts.core.hashing import canonical_sha256, write_json
from scripts.data.checksums import hash_file
from scripts.data.errors import DatasetError

TREE_FORMAT_VERSION = formats.version("dataset.manifest.json")
# what Snakemake itself writes into a directory() output once its job is done: not the dataset's
SNAKEMAKE_MARKER = ".snakemake_timestamp"
TREE_REDO = (
    "the trainer reads the dataset only as it was unpacked: run the same snakemake command "
    "again, and before any job it unpacks the dataset again from the verified downloads "
    "(finished runs are kept)"
)


def tree_manifest_path(tree: Path) -> Path:
    """The manifest of an unpacked tree: data/<b>/dataset -> data/<b>/dataset.manifest.json."""
    return tree.with_name(f"{tree.name}.manifest.json")


def unpacked_tree(verified_manifest: Path) -> Path:
    """The tree unpacked from the files that ``verified_manifest`` (data/<b>/manifest.json)
    verified: data/<b>/dataset (rules/dataset.smk)."""
    return verified_manifest.with_name("dataset")


def make_read_only(tree: Path) -> None:
    """chmod a-w every regular file under ``tree`` (not the folders, nor what links point to)."""
    for root, _dirs, names in os.walk(tree):
        for name in names:
            path = Path(root) / name
            st = path.lstat()
            if stat.S_ISREG(st.st_mode):
                path.chmod(stat.S_IMODE(st.st_mode) & ~0o222)


def _scan(tree: Path) -> dict[str, os.stat_result]:
    """lstat of everything under ``tree`` but its folders, by path relative to it ('/'); links
    are listed, never followed. Plain strings and scandir: this runs before every run."""
    found: dict[str, os.stat_result] = {}
    stack = [(str(tree), "")]
    while stack:
        folder, prefix = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, rel + "/"))
                else:
                    found[rel] = entry.stat(follow_symlinks=False)
    found.pop(SNAKEMAKE_MARKER, None)
    return dict(sorted(found.items()))


def _entry(tree: Path, rel: str, st: os.stat_result) -> dict[str, Any]:
    path = tree / rel
    if stat.S_ISLNK(st.st_mode):
        return {"path": rel, "symlink": os.readlink(path)}
    if not stat.S_ISREG(st.st_mode):
        raise DatasetError(f"{path}: not a regular file, folder or link; a dataset holds none")
    digests, size = hash_file(path, ["sha256"])
    return {"path": rel, "size": size, "sha256": digests["sha256"], "mtime_ns": st.st_mtime_ns}


def tree_digest(entries: Sequence[Mapping[str, Any]]) -> str:
    """sha256 of what the tree holds: each path with its size and sha256 (or link target), as
    canonical JSON. Not mtimes: the same bytes unpacked again give the same digest."""
    content = [
        {k: e[k] for k in ("path", "size", "sha256", "symlink") if k in e}
        for e in sorted(entries, key=lambda e: e["path"])
    ]
    return canonical_sha256(content)


def tree_manifest(tree: Path, sources: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The manifest of ``tree``: every file's path, size, sha256 and mtime_ns, every link's
    target; ``sources`` names, for a file linked (or copied) from a download, that download
    (relative to the tree's parent folder)."""
    entries = [_entry(tree, rel, st) for rel, st in _scan(tree).items()]
    for e in entries:
        if sources and e["path"] in sources:
            e["source"] = sources[e["path"]]
    return {
        "format_version": TREE_FORMAT_VERSION,
        "digest": tree_digest(entries),
        "files": entries,
    }


def write_tree_manifest(tree: Path, manifest: Path | None = None) -> dict[str, Any]:
    """Record ``tree`` as it is now in ``manifest`` (default: beside it), atomically."""
    record = tree_manifest(tree)
    write_json(manifest or tree_manifest_path(tree), record)
    return record


def read_tree_manifest(path: Path) -> dict[str, Any]:
    """A tree manifest, checked: its format version, and its digest against its files."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path} is missing") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path} cannot be read ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), list):
        raise DatasetError(f"{path} is not a dataset manifest (no files list)")
    version = data.get("format_version")
    if not isinstance(version, int) or version > TREE_FORMAT_VERSION:
        raise DatasetError(
            f"{path} has format_version {version!r}; this workflow reads up to "
            f"{TREE_FORMAT_VERSION} (made by a newer workflow?)"
        )
    if data.get("digest") != tree_digest(data["files"]):
        raise DatasetError(f"{path} was edited: its digest does not match its files")
    return data


def tree_digest_of(manifest: Path) -> str | None:
    """The recorded digest of an unpacked tree, or None where there is no readable manifest."""
    try:
        return read_tree_manifest(manifest)["digest"]
    except DatasetError:
        return None


def tree_changes(
    tree: Path, manifest: Mapping[str, Any], *, full: bool = False
) -> list[tuple[str, str]]:
    """(path under ``tree``, what changed) for each file that differs from ``manifest``. Size
    and mtime first; the sha256 only of a file whose mtime differs (of every file: ``full``)."""
    on_disk = _scan(tree)
    changes: list[tuple[str, str]] = []
    for e in manifest["files"]:
        rel = e["path"]
        st = on_disk.pop(rel, None)
        if st is None:
            changes.append((rel, "removed after unpacking"))
        elif "symlink" in e:
            if not stat.S_ISLNK(st.st_mode) or os.readlink(tree / rel) != e["symlink"]:
                changes.append((rel, "no longer the link that was unpacked"))
        elif not stat.S_ISREG(st.st_mode):
            changes.append((rel, "no longer a regular file"))
        elif st.st_size != e["size"]:
            changes.append(
                (
                    rel,
                    f"size {st.st_size} bytes differs from the dataset manifest's {e['size']} "
                    "(edited after unpacking?)",
                )
            )
        elif full or st.st_mtime_ns != e["mtime_ns"]:
            if hash_file(tree / rel, ["sha256"])[0]["sha256"] != e["sha256"]:
                changes.append(
                    (rel, "sha256 differs from the dataset manifest (edited after unpacking?)")
                )
    changes += [(rel, "not in the dataset manifest (added after unpacking?)") for rel in on_disk]
    return sorted(changes)


def describe_changes(tree: Path, changes: Sequence[tuple[str, str]], limit: int = 5) -> str:
    """'data/b/dataset/x: what; data/b/dataset/y: what; and N more'."""
    text = "; ".join(f"{tree / rel}: {what}" for rel, what in changes[:limit])
    return text + (f"; and {len(changes) - limit} more" if len(changes) > limit else "")


def tree_problem(tree: Path, *, full: bool = False) -> str | None:
    """Why the trainer must not read ``tree`` (a changed, added or removed file, or no manifest
    to check it against), with what to do; None when it is as unpacked."""
    try:
        manifest = read_tree_manifest(tree_manifest_path(tree))
    except DatasetError as exc:
        return f"{exc}, so {tree} cannot be checked; {TREE_REDO}"
    if not tree.is_dir():
        return f"{tree} is missing; {TREE_REDO}"
    changes = tree_changes(tree, manifest, full=full)
    return f"{describe_changes(tree, changes)}; {TREE_REDO}" if changes else None
