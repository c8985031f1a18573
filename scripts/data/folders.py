"""Data a user already has: ``dataset: {folders: {NAME: HOST_PATH}}``.

Real MLPerf data (OpenImages: 1.2 million files, 375 GB) cannot be listed file by file with a
checksum each, and is made by the implementation's own scripts. Such a dataset is one existing
host folder per data mount path (``data_mounts``' ``path``). The dataset rule
(rules/dataset.smk: link_dataset_folders) makes ``<data_dir>/<b>/dataset/NAME`` an absolute
link to each resolved folder, records the links in the tree manifest as every tree is recorded
(:mod:`scripts.data.tree`: a changed link is a changed tree), and writes
``<data_dir>/<b>/manifest.json`` with each folder's resolved path and a cheap identity: its file
count and bytes as NVIDIA's mountcheck counts the root of a mount (:func:`mountcheck.describe`,
one walk, no hashing). Runs record that manifest's digest as they record a verified one, so a
folder whose counts changed is noticed before each run (:func:`folders_problem`) and at load time
(scripts/campaign/data_folders.py). Docker's bind mount resolves the link (engine._bind).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scripts.core import formats
from scripts.core.hashing import write_json
from scripts.data.errors import DatasetError
from scripts.data.mount_walk import MountCheckError
from scripts.data.tree import write_tree_manifest

REDO = "to train on it as it is now, move the benchmark's finished runs away"
# where the implementation's data commands (config dataset.commands) make their folders:
# <data_dir>/<benchmark>/made/FOLDER, beside the dataset tree that links to them
MADE = "made"


def made_folder(data_dir: str, benchmark: str, folder: str) -> str:
    """The folder a data command makes (scripts/run/backends/data_commands.py)."""
    return f"{data_dir.rstrip('/')}/{benchmark}/{MADE}/{folder}"


def dataset_folders(dataset: Mapping[str, Any], data_dir: str, benchmark: str) -> dict[str, str]:
    """A dataset's folders, NAME: HOST_PATH: those the user has (``folders``) or those its data
    commands make (``commands``), which are then linked, counted and checked alike; {} for a
    dataset of files."""
    if dataset.get("commands"):
        return {
            c["folder"]: made_folder(data_dir, benchmark, c["folder"]) for c in dataset["commands"]
        }
    return dict(dataset.get("folders") or {})


def resolve_folder(key: str, path: str | Path, base: Path = Path(".")) -> Path:
    """The absolute, resolved folder of config key ``key`` (``path`` relative to ``base``, the
    working folder); a missing, non-folder or unreadable one is a one-line error naming it."""
    folder = (base / Path(path).expanduser()).resolve()
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise DatasetError(f"{key}: {path} ({folder}) {what}")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise DatasetError(f"{key}: {path} ({folder}) cannot be read")
    return folder


def identity(key: str, folder: Path) -> dict[str, int]:
    """A folder's cheap identity: mountcheck's file count and bytes of its root (one walk)."""
    from scripts.data.mountcheck import describe  # lazy: the runner imports this module

    try:
        (root,) = describe({key: folder}, [(key, ".")])
    except (OSError, MountCheckError) as exc:
        raise DatasetError(f"{key}: {folder} cannot be counted ({exc})") from None
    return {"num_files": root.num_files, "num_bytes": root.num_bytes}


def link_folders(
    folders: Mapping[str, str], tree: Path, manifest: Path, *, prefix: str = "dataset.folders"
) -> list[dict[str, Any]]:
    """Make ``tree`` (anew) hold one absolute link per folder, record it beside itself
    (dataset.manifest.json), and write ``manifest`` with each folder's path and identity."""
    entries = []
    for name in sorted(folders):
        folder = resolve_folder(f"{prefix}.{name}", folders[name])
        entries.append({"name": name, "path": str(folder), **identity(name, folder)})
    if tree.is_symlink() or tree.is_file():
        tree.unlink()
    elif tree.exists():
        shutil.rmtree(tree)  # links only: rmtree never follows them
    tree.mkdir(parents=True)
    for e in entries:
        (tree / e["name"]).symlink_to(e["path"], target_is_directory=True)
    write_tree_manifest(tree)
    write_json(manifest, formats.stamped("manifest.json", {"files": [], "folders": entries}))
    return entries


def recorded_folders(manifest: Path) -> list[dict[str, Any]] | None:
    """The folders a manifest.json records; None where it records none (a dataset of files) or
    cannot be read (the workflow's own checks say why)."""
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    found = data.get("folders") if isinstance(data, dict) else None
    return found if isinstance(found, list) else None


def folder_changes(
    manifest: Path, folders: Mapping[str, str] | None = None, base: Path = Path(".")
) -> list[str]:
    """One line per recorded folder that is gone or whose counts changed, and, given the
    config's ``folders``, per folder added, dropped or pointing elsewhere since recorded."""
    recorded = recorded_folders(manifest) or []
    changes = []
    for e in recorded:
        name, path = e["name"], Path(e["path"])
        if folders is not None and name not in folders:
            changes.append(f"{name}: no longer in the config (recorded {path})")
            continue
        if folders is not None:
            try:
                now = resolve_folder(name, folders[name], base)
            except DatasetError as exc:
                changes.append(str(exc))
                continue
            if now != path:
                changes.append(f"{name}: now {now}, recorded {path}")
                continue
        if not path.is_dir():
            changes.append(f"{name}: {path} is gone")
            continue
        try:
            found = identity(name, path)
        except DatasetError as exc:
            changes.append(str(exc))
            continue
        if found != {"num_files": e["num_files"], "num_bytes": e["num_bytes"]}:
            from scripts.data.mountcheck import counts  # lazy: as describe, above

            changes.append(
                f"{name}: {path} holds {counts(found['num_files'], found['num_bytes'])}, "
                f"recorded {counts(e['num_files'], e['num_bytes'])}"
            )
    names = {e["name"] for e in recorded}
    changes += [f"{n}: added to the config" for n in sorted(set(folders or ()) - names)]
    return changes


def folders_problem(tree: Path) -> str | None:
    """Before each run: why the trainer must not read a dataset of folders (a folder whose
    counts changed since recorded); None when it is as recorded or not a dataset of folders."""
    manifest = tree.with_name("manifest.json")
    if recorded_folders(manifest) is None:
        return None
    changes = folder_changes(manifest)
    if not changes:
        return None
    return f"the data folders changed since {manifest} recorded them: {'; '.join(changes)}; {REDO}"


def run_problem(container: Mapping[str, Any], tree: Path) -> str | None:
    """:func:`folders_problem` for a run (the runner, before each attempt), unless its
    expected_mounts check (the container backend's check_run) counts the folders already; a
    dataset of files costs one read of its small manifest.json."""
    if container.get("expected_mounts"):
        return None
    try:
        text = (tree.parent / "manifest.json").read_text()
    except OSError:
        return None
    return folders_problem(tree) if '"folders"' in text else None
