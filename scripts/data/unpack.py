"""Make the unpacked tree from the verified files: archives unpacked safely, other files linked.

The archives' members are all checked before a byte is written, and the bytes counted while
writing (:mod:`scripts.data.archives`); every file of the tree is made read-only and recorded in
the tree's manifest (:mod:`scripts.data.tree`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scripts.core.hashing import write_json
from scripts.data import archives
from scripts.data.errors import DatasetError
from scripts.data.tree import make_read_only, tree_manifest


def safe_unpack(archive: Path, dest: Path, max_unpacked_bytes: int | None = None) -> list[str]:
    """Unpack a .tar, .tar.gz or .zip into ``dest``: every member checked before anything is
    written, every byte counted while writing (:mod:`scripts.data.archives`)."""
    try:
        return archives.unpack([archive], dest, max_unpacked_bytes)
    except archives.ArchiveError as exc:
        raise DatasetError(str(exc)) from None


def prepare(
    files: Sequence[Mapping[str, Any]],
    download_dir: Path,
    dest: Path,
    manifest: Path | None = None,
    keep_replaced: Path | None = None,
    max_unpacked_bytes: int | None = None,
) -> None:
    """Make ``dest``: archives unpacked (all their members checked first, as one tree, and at
    most ``max_unpacked_bytes`` or the default limit of :func:`scripts.data.archives.unpack_limit`
    written), other files hard-linked (copied across devices), every file made read-only, and,
    with ``manifest``, the tree's manifest written beside it (see :func:`tree_manifest`). The
    old ``dest`` is removed, or moved to ``keep_replaced``; a refused archive leaves it as it
    was and keeps nothing of what was unpacked."""
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        unpack = [download_dir / f["name"] for f in files if f.get("unpack")]
        archives.unpack(unpack, tmp, max_unpacked_bytes, shown=dest)
    except archives.ArchiveError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DatasetError(str(exc)) from None
    sources: dict[str, str] = {}
    for f in files:
        src = download_dir / f["name"]
        if not f.get("unpack"):
            try:
                os.link(src, tmp / f["name"])
            except OSError:
                shutil.copy2(src, tmp / f["name"])
            sources[f["name"]] = os.path.relpath(src, dest.parent)
    make_read_only(tmp)
    record = tree_manifest(tmp, sources) if manifest is not None else None
    if manifest is not None:
        manifest.unlink(missing_ok=True)  # never an old manifest beside a new tree
    if keep_replaced is not None and dest.exists():
        os.replace(dest, keep_replaced)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    if manifest is not None and record is not None:
        write_json(manifest, record)
