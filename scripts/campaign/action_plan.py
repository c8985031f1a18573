"""The load-time checks' decisions, pure: a :class:`scripts.campaign.state.State` in, the list
of :mod:`scripts.campaign.actions` out, in order, ending at the first
:class:`~scripts.campaign.actions.Refuse` (:func:`plan_actions`). It follows the effect of each
action on the later checks (e.g. a removed corrupt result is parsed in step 5). The lock is
planned from the :class:`~scripts.campaign.invocation.Mode` alone (:func:`lock_actions`), and
what follows a successful invocation by :func:`success_actions`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from scripts.campaign.actions import (
    Action,
    RebuildImage,
    RecordTableSettings,
    RefetchSource,
    RefreshSealCache,
    Refuse,
    RemoveCorruptResult,
    RemoveStale,
    RestoreDatasetTree,
    TakeLock,
    Unlock,
    Warn,
    WriteResults,
)
from scripts.campaign.comparability import incomparable_message
from scripts.campaign.invocation import Mode
from scripts.campaign.stale import (
    TABLES,
    RunFiles,
    Stale,
    settings_record,
    stale_derived_files,
    stale_verdict,
    unparsed_runs,
)
from scripts.campaign.state import State
from scripts.campaign.topology import CampaignRuns
from scripts.core.records import differences
from scripts.run import seals


def lock_actions(mode: Mode, root: Path) -> list[Action]:
    """The lock, taken before anything else is read: --unlock clears our record (and nothing
    is checked); --nolock and dry runs take no lock and look at none (the checks still run);
    a job's own snakemake does neither."""
    if mode.job:
        return []
    if mode.unlock:
        return [Unlock(root)]
    if mode.nolock or mode.dry_run:
        return []
    return [TakeLock(root, mode.argv)]


def success_actions(mode: Mode, root: Path, runs: tuple[CampaignRuns, ...]) -> list[Action]:
    """After a successful invocation of the snakemake the user started: refresh the seal cache
    (``root`` relative, as the load-time check names it)."""
    return [] if mode.job else [RefreshSealCache(root, runs)]


@dataclass
class _Disk:
    """What earlier actions of a real run changed, as the later checks must see it."""

    results_gone: set[Path] = field(default_factory=set)  # a run folder whose result went
    results_made: set[Path] = field(default_factory=set)
    tables_gone: set[str] = field(default_factory=set)  # benchmark names
    removed: set[Path] = field(default_factory=set)

    def run(self, r: RunFiles) -> RunFiles:
        if r.dir in self.results_made:
            return dataclasses.replace(r, result=True)
        if r.dir in self.results_gone:
            return dataclasses.replace(r, result=False)
        return r


def plan_actions(state: State) -> list[Action]:
    """The checks after the lock, in order; the list ends at the first :class:`Refuse`. In a
    real run each step sees what the steps before it will have changed; in a dry run nothing
    changes, so each sees the disk as it is."""
    if not state.mode.checks:
        return []
    disk = _Disk()
    actions: list[Action] = []
    for step in (
        _seal_actions,
        _comparability_actions,
        _image_actions,
        _parse_actions,
        _stale_actions,
        _settings_actions,
        _dataset_actions,
    ):
        for action in step(state, disk):
            actions.append(action)
            if isinstance(action, Refuse):
                return actions
    return actions


def _seal_actions(state: State, disk: _Disk) -> list[Action]:
    if isinstance(state.seals, Refuse):
        return [state.seals]
    tampered = seals.tampered_message(state.seals)
    if tampered:
        return [Refuse(tampered)]
    unsealed = seals.unsealed_message(state.seals)
    actions: list[Action] = [Warn(unsealed)] if unsealed else []
    for c in state.seals:
        for run, why in sorted(c.corrupt_results.items()):
            actions.append(RemoveCorruptResult(c.run_dir(state.root, run) / "result.json", why))
            if not state.mode.dry_run:
                disk.results_gone.add(c.run_dir(state.root, run))
    return actions


def _comparability_actions(state: State, disk: _Disk) -> list[Action]:
    if isinstance(state.incomparable, Refuse):
        return [state.incomparable]
    if not state.incomparable:
        return []
    problems = [
        incomparable_message(i.benchmark, i.system, dict(i.runs)) for i in state.incomparable
    ]
    return [
        Refuse(
            "finished runs would no longer be comparable; nothing was run:\n  "
            + "\n  ".join(problems)
        )
    ]


def _image_actions(state: State, disk: _Disk) -> list[Action]:
    root = state.root
    actions: list[Action] = [
        RefetchSource(s.path, str(s.path.relative_to(root)), s.head, s.commit)
        for s in state.sources
        if s.head != s.commit
    ]
    for image in state.images:
        if isinstance(image, Refuse):
            return [*actions, image]
        if not image.why:
            continue
        name = str(image.stamp.relative_to(root))
        if image.finished:
            b, s = image.benchmark, image.system
            actions.append(
                Refuse(
                    f"{name}: {image.why}.\n  Runs {', '.join(image.finished)} of "
                    f"{b}/{s} ran in that image, and a rebuilt image would not be the "
                    f"same; nothing was run. Restore the image (e.g. {image.engine} load), or "
                    "move the old runs aside (kept) and start anew:\n"
                    f"    python -m scripts archive results/{b}/{s}"
                )
            )
            return actions
        actions.append(RebuildImage(image.stamp, name, image.benchmark, image.system, image.why))
    return actions


def _parse_actions(state: State, disk: _Disk) -> list[Action]:
    actions: list[Action] = []
    for b in state.benchmarks:
        found = unparsed_runs(disk.run(r) for r in b.runs)
        if not found:
            continue
        tables = state.root / "results" / b.name
        actions.append(
            WriteResults(
                tuple(r.dir.relative_to(state.root) for r in found),
                b.quality,
                b.time_to_train,
                tuple(tables / t for t in TABLES),
                b.compliance_ruleset,
            )
        )
        if not state.mode.dry_run:
            disk.results_made.update(r.dir for r in found)
            disk.tables_gone.add(b.name)
    return actions


def _stale_actions(state: State, disk: _Disk) -> list[Action]:
    stale: list[Stale] = []
    for b in state.benchmarks:
        if isinstance(b.stale_downloads, Refuse):
            return [b.stale_downloads]
        stale += b.stale_downloads
        tables = () if b.name in disk.tables_gone else b.tables
        stale += stale_derived_files(state.root, b.name, (disk.run(r) for r in b.runs), tables)
    incomplete = {  # the MLPerf benchmarks' runs without a result: the submission's verdict goes
        b.name: [
            f"{r.system}/run_{r.run}"
            for r in map(disk.run, b.runs)
            if not (r.result and r.log and r.meta)
        ]
        for b in state.benchmarks
        if b.compliance_ruleset
    }
    stale += stale_verdict(state.verdict, incomplete)
    if not stale:
        return []
    if not state.mode.dry_run:
        disk.removed.update(p for p, _ in stale)
    return [RemoveStale(tuple(stale), state.root)]


def _settings_actions(state: State, disk: _Disk) -> list[Action]:
    """A benchmark whose table settings differ from the recorded ones: its tables, plots and
    report go (they are made again) and the new settings are recorded. Without a record (a
    campaign of a workflow before this check) the settings are recorded and nothing goes."""
    actions: list[Action] = []
    stale: list[Stale] = []
    for b in state.benchmarks:
        if b.settings is None or b.settings == b.recorded_settings:
            continue
        if b.recorded_settings is not None:
            why = "made with other settings: " + "; ".join(
                differences(b.recorded_settings, b.settings)
            )
            stale += [(f, why) for f in b.settings_files if f not in disk.removed]
        actions.append(RecordTableSettings(settings_record(state.root, b.name), b.settings))
    if stale:
        if not state.mode.dry_run:
            disk.removed.update(p for p, _ in stale)
        actions.insert(0, RemoveStale(tuple(stale), state.root))
    return actions


def _dataset_actions(state: State, disk: _Disk) -> list[Action]:
    actions: list[Action] = []
    for b in state.benchmarks:
        if b.data_folders:  # scripts/campaign/data_folders.py
            actions.append(b.data_folders)
        ds = b.dataset
        if ds is None:
            continue
        tree = state.root / ds.tree
        tree_is_dir = ds.tree_is_dir and tree not in disk.removed
        verified = ds.verified and tree.with_name("manifest.json") not in disk.removed
        # finished runs are looked for only when the tree or its verification is gone (then
        # Snakemake would make them again in its plan and retrain every finished run after them)
        runs_used_it = (not tree_is_dir or not verified) and bool(ds.finished_runs)
        actions.append(
            RestoreDatasetTree(ds.tree, ds.files, ds.remake, runs_used_it, ds.max_unpacked_bytes)
        )
    return actions
