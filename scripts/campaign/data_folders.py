"""The load-time check of a dataset of folders the user already has (config dataset.folders).

As a changed unpacked tree is noticed before the plan is built (:class:`RestoreDatasetTree`),
so is a data folder whose file count or bytes differ from what ``<data_dir>/<b>/manifest.json``
recorded (:mod:`scripts.data.folders`: one walk per folder, no hashing), or that the config now
names differently. Nothing can be made again from a folder the workflow did not make: with
finished runs that used it, the workflow stops, naming the folder and both counts; without, the
record goes and the dataset rule links and records the folders again before any run.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from scripts.campaign.actions import Action
from scripts.campaign.invocation import Refused, Say
from scripts.data.folders import folder_changes, recorded_folders
from scripts.data.tree import tree_manifest_path


@dataclass(frozen=True)
class CheckDataFolders(Action):
    """Compare a benchmark's data folders with their record; see the module's docstring."""

    benchmark: str
    root: Path  # the working folder (absolute): config paths are relative to it
    tree: Path  # <data_dir>/<b>/dataset, relative to ``root``
    folders: Mapping[str, str]

    def apply(self, dry_run: bool, warn: Say) -> None:
        manifest = self.tree.with_name("manifest.json")
        if recorded_folders(self.root / manifest) is None:
            return  # never recorded: the dataset rule does it
        changes = folder_changes(self.root / manifest, self.folders, self.root)
        if not changes:
            return
        what = (
            f"the data folders of {self.benchmark} changed since {manifest} recorded them: "
            + "; ".join(changes)
        )
        used = sorted((self.root / "results" / self.benchmark).glob("*/run_*/run.json"))
        if used:
            first = used[0].parent.relative_to(self.root)
            raise Refused(
                f"{what}; {len(used)} finished run(s) used them (e.g. {first}): put the folders "
                f"back as they were, or move results/{self.benchmark} away to train again on them"
            )
        if dry_run:
            warn(f"{what}; a real run records them again before any run")
            return
        for path in (manifest, tree_manifest_path(self.tree)):
            (self.root / path).unlink(missing_ok=True)
        tree = self.root / self.tree
        if tree.is_dir() and not tree.is_symlink():
            shutil.rmtree(tree)  # links only: rmtree never follows them
        warn(f"{what}; they are linked and recorded again before any run")
