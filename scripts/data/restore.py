"""Repair of the unpacked tree before a plan is built: unpack it again when it was changed.

A tree that is gone, has no readable manifest, or differs from its manifest is unpacked again from
its verified files (:func:`restore_tree`); a download that is the same file as a changed one of
the tree (a hard link edited in place) is made again first, and a changed tree is kept aside.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from scripts.data.errors import DatasetError
from scripts.data.tree import describe_changes, read_tree_manifest, tree_changes, tree_manifest_path
from scripts.data.verify import verify, write_verified_manifest


def _changed_sources(
    tree: Path, manifest: Mapping[str, Any], changes: Sequence[tuple[str, str]]
) -> list[Path]:
    """The downloads (or script's files) that are the same file as a changed file of the tree:
    a hard link edited in place changes both."""
    sources = {e["path"]: tree.parent / e["source"] for e in manifest["files"] if "source" in e}
    return [
        sources[rel]
        for rel, _ in changes
        if rel in sources
        and (tree / rel).exists()
        and sources[rel].exists()
        and os.path.samefile(tree / rel, sources[rel])
    ]


def _tree_damage(
    tree: Path, verified: Path, manifest_path: Path, runs_used_it: bool
) -> tuple[str, Path | None, list[Path]] | None:
    """What is wrong with an unpacked ``tree`` (see :func:`restore_tree`): why it must be
    unpacked again, where a changed tree is kept aside (None: it is not kept), and the source
    files that changed with it; None when nothing is wrong or the tree was never made."""
    keep: Path | None = None
    changed: list[Path] = []
    if not verified.exists():
        if not runs_used_it:
            return None  # never verified: the workflow's own jobs make it
        # finished runs used it: left to Snakemake, the downloads, the verification and the
        # tree would be made again in the plan, and every finished run trained again after them
        why = f"{verified} is missing while finished runs used it"
    elif not tree.is_dir():
        if not manifest_path.exists() and not runs_used_it:
            return None  # never unpacked: the workflow's own jobs make it when a run needs it
        why = f"{tree} is missing"
    elif not manifest_path.exists():
        why = f"{tree} has no manifest ({manifest_path}; unpacked by an older workflow?)"
    else:
        try:
            manifest = read_tree_manifest(manifest_path)
        except DatasetError as exc:
            why = str(exc)
        else:
            changes = tree_changes(tree, manifest)
            if not changes:
                return None
            why = describe_changes(tree, changes)
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            keep = tree.with_name(f"{tree.name}.edited-{stamp}")
            changed = _changed_sources(tree, manifest, changes)
    return why, keep, changed


def restore_tree(
    tree: Path,
    files: Sequence[Mapping[str, Any]],
    source_dir: Path,
    remake: Callable[[Sequence[str]], None],
    *,
    dry_run: bool = False,
    runs_used_it: bool = False,
    max_unpacked_bytes: int | None = None,
) -> str | None:
    """Before a plan is built: unpack ``tree`` again from its verified files when it is gone
    but was unpacked (its manifest is left, or ``runs_used_it``: finished runs exist), has no
    readable manifest, or differs from its manifest. Returns what was found and done (a
    warning for the user), or None when the tree is as unpacked or was never made.

    Snakemake cannot be left to do this: it redoes no upstream job of finished runs, and it
    trains every finished run again when the (ancient) tree is missing as its plan is built. A
    file of ``source_dir`` that is the same file as a changed one of the tree (a hard link edited
    in place) changed with it: it is removed, and ``remake(names)`` makes the missing files again
    (a download, or the dataset script). Then every file is verified and the tree unpacked; a
    changed tree is kept aside as ``<tree>.edited-<time>``, never deleted."""
    verified = tree.with_name("manifest.json")  # rules/dataset.smk: verify_dataset
    manifest_path = tree_manifest_path(tree)
    damage = _tree_damage(tree, verified, manifest_path, runs_used_it)
    if damage is None:
        return None
    why, keep, changed = damage
    remade = "a real run makes it again" if dry_run else "made again"
    found = "; ".join(
        [why]
        + [f"{src} is the same file (a hard link) and changed with it: {remade}" for src in changed]
    )
    if dry_run:
        return f"{found}; a real run unpacks {tree} again before any job"
    for src in changed:
        src.unlink()
    missing = [f["name"] for f in files if not (source_dir / f["name"]).exists()]
    if missing:
        remake(missing)  # fetched again, or the script runs again
    write_verified_manifest(verified, verify(files, source_dir))
    # lazy: unpacking (tar, zip, their checks) loads only when a tree is unpacked again, not
    # when the load-time check finds it as it was unpacked (every start)
    from scripts.data.unpack import prepare

    prepare(files, source_dir, tree, manifest_path, keep, max_unpacked_bytes)
    kept = f"; the changed tree is kept as {keep}" if keep else ""
    return f"{found}; unpacked {tree} again from the verified files{kept}"
