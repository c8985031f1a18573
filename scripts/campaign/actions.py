"""The load-time checks' actions: each one is data (what :mod:`scripts.campaign.action_plan`
decided), and does what it says in its ``apply`` (:func:`apply` does a list of them in order).
A dry run reports what a real run does and changes nothing, except what an action says it does
in a dry run too; :class:`Refuse` stops the workflow by raising
:class:`scripts.campaign.invocation.Refused`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.campaign import locks
from scripts.campaign.invocation import Refused, Say
from scripts.campaign.stale import Stale, describe_stale, remove_stale
from scripts.campaign.topology import CampaignRuns
from scripts.core import hashing, layout
from scripts.data.download_policy import Policy
from scripts.data.errors import DatasetError
from scripts.run import seals


class Action:
    """One step of the load-time checks."""

    def apply(self, dry_run: bool, warn: Say) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class TakeLock(Action):
    """Take the folder for this invocation; a stale lock of a killed one on this host goes."""

    root: Path
    argv: tuple[str, ...]

    def apply(self, dry_run: bool, warn: Say) -> None:
        if dry_run:
            return  # never planned for a dry run: it takes and checks nothing
        try:
            removed = locks.hold(self.root, list(self.argv))
        except locks.Locked as exc:
            raise Refused(str(exc)) from None
        if removed:
            warn(removed)


@dataclass(frozen=True)
class Unlock(Action):
    """--unlock: clear our lock record (Snakemake removes its own lock files), also in a dry
    run: --unlock does nothing else."""

    root: Path

    def apply(self, dry_run: bool, warn: Say) -> None:
        locks.unlock(self.root)


@dataclass(frozen=True)
class Refuse(Action):
    """Stop the workflow with this message; nothing after it is done (dry run or not)."""

    message: str

    def apply(self, dry_run: bool, warn: Say) -> None:
        raise Refused(self.message)


@dataclass(frozen=True)
class Warn(Action):
    """Say something that needs no action (e.g. runs from before sealing), dry run or not."""

    message: str

    def apply(self, dry_run: bool, warn: Say) -> None:
        warn(self.message)


@dataclass(frozen=True)
class RemoveCorruptResult(Action):
    """A corrupt result.json of a run whose log is intact goes (then it is parsed again)."""

    path: Path
    why: str

    def apply(self, dry_run: bool, warn: Say) -> None:
        doing = "a real run re-parses" if dry_run else "re-parsing"
        warn(f"{self.why}: {doing} it from its intact log (no training)")
        if not dry_run:
            self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class RefetchSource(Action):
    """A fetched source at another commit than the configured one goes (it is fetched again)."""

    path: Path
    name: str  # the path as the message shows it
    head: str | None
    commit: str

    def apply(self, dry_run: bool, warn: Say) -> None:
        warn(
            f"{self.name} is at {self.head}, not at the configured commit {self.commit}: it is "
            "fetched again"
        )
        if not dry_run:
            shutil.rmtree(self.path)


@dataclass(frozen=True)
class RebuildImage(Action):
    """An image stamp that no longer matches goes, so the image is built again."""

    stamp: Path
    name: str  # the stamp as the message shows it
    benchmark: str
    system: str
    why: str

    def apply(self, dry_run: bool, warn: Say) -> None:
        if dry_run:
            warn(f"{self.name} is out of date ({self.why}); a real run rebuilds it")
            return
        warn(f"Rebuilding the image of {self.benchmark}/{self.system}: {self.why}")
        self.stamp.unlink()


@dataclass(frozen=True)
class WriteResults(Action):
    """Parse the logs of finished runs without result.json (no training), and remove the
    benchmark's tables built from the result files: Snakemake redoes neither a job whose input
    only became newer, nor one whose intermediate output is missing."""

    run_dirs: tuple[Path, ...]  # relative to the working directory, as the jobs write them
    quality: dict[str, Any]
    time_to_train: str
    tables: tuple[Path, ...]
    compliance_ruleset: str | None = None  # as the run's own job checks it

    def apply(self, dry_run: bool, warn: Say) -> None:
        names = ", ".join(map(str, self.run_dirs))
        if dry_run:
            warn(f"A real run re-parses these runs' logs (no training): {names}")
            return
        warn(f"Re-parsing the logs of runs without result.json: {names}")
        # lazy: the log parser and the compliance checks load only when a log is parsed again
        # (every workflow load imports this module; a no-op parses nothing)
        from scripts.run import result_json

        for d in self.run_dirs:
            result_json.write_result(
                d / "mlperf.log",
                d / "run.json",
                self.quality,
                self.time_to_train,
                d / "result.json",
                compliance_ruleset=self.compliance_ruleset,
                compliance_cache=layout.COMPLIANCE_CACHE,
            )
        for table in self.tables:
            table.unlink(missing_ok=True)


@dataclass(frozen=True)
class RemoveStale(Action):
    """Remove derived files that no longer describe the runs or the configured dataset."""

    stale: tuple[Stale, ...]
    root: Path  # the messages name the files relative to it

    def apply(self, dry_run: bool, warn: Say) -> None:
        if dry_run:
            warn(
                "These derived files are out of date and a real run will rebuild them:\n"
                + describe_stale(self.stale, self.root)
            )
            return
        warn(
            "Removing derived files that no longer match the runs on disk (they are rebuilt):\n"
            + describe_stale(self.stale, self.root)
        )
        remove_stale(self.stale)


@dataclass(frozen=True)
class RecordTableSettings(Action):
    """Record what a benchmark's tables are now computed with (a dry run records nothing)."""

    path: Path
    settings: dict[str, Any]

    def apply(self, dry_run: bool, warn: Say) -> None:
        if not dry_run:
            hashing.write_json(self.path, self.settings, sort_keys=True)


@dataclass(frozen=True)
class Remake:
    """How a dataset's missing files are made again (what the rules do): its script, or each
    file's download."""

    folder: Path
    script: tuple[str, Path] | None  # (command, cwd)
    downloads: Mapping[str, tuple[list[str], dict[str, str]]]  # name -> (sources, checksums)
    policy: Policy

    def __call__(self, names: Sequence[str]) -> None:
        # lazy: a dataset's script or download runs only when files are missing, not at load
        from scripts.data.fetch import fetch
        from scripts.data.sources import run_script

        if self.script is not None:
            run_script(self.script[0], self.script[1], self.folder)
            return
        for name in names:
            sources, expected = self.downloads[name]
            fetch(sources, self.folder / name, expected, self.policy)


@dataclass(frozen=True)
class RestoreDatasetTree(Action):
    """Unpack a dataset tree again when it differs from its manifest, has none, or is gone
    while its files were verified (:func:`scripts.data.restore.restore_tree` looks at the tree and
    decides; it says what it found, and in a dry run what a real run does)."""

    tree: Path
    files: list[dict[str, Any]]
    remake: Remake
    runs_used_it: bool
    max_unpacked_bytes: int | None = None

    def apply(self, dry_run: bool, warn: Say) -> None:
        # lazy: unpacking (tar, zip, their checks) loads only when a tree is looked at
        from scripts.data.restore import restore_tree

        try:
            done = restore_tree(
                self.tree,
                self.files,
                self.remake.folder,
                self.remake,
                dry_run=dry_run,
                runs_used_it=self.runs_used_it,
                max_unpacked_bytes=self.max_unpacked_bytes,
            )
        except DatasetError as exc:
            raise Refused(f"{self.tree} cannot be unpacked again: {exc}") from None
        if done:
            warn(done)


@dataclass(frozen=True)
class RefreshSealCache(Action):
    """After a successful invocation: check the seals of its runs once more, so that they are
    in the cache and the next no-op invocation reads no run.json (bench/seal_check.py). A
    cache only: also done after a dry run."""

    root: Path
    campaign: tuple[CampaignRuns, ...]

    def apply(self, dry_run: bool, warn: Say) -> None:
        for c in self.campaign:
            seals.check_system(self.root, c.benchmark, c.system, c.runs)


def apply(actions: Iterable[Action], dry_run: bool, warn: Say) -> None:
    """Do each action in order (a dry run reports what a real run does and changes nothing,
    except what each action says it does in a dry run too); raises :class:`Refused` at a
    :class:`Refuse`, a held lock or a tree that cannot be unpacked again."""
    for action in actions:
        action.apply(dry_run, warn)
