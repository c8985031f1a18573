"""The checks that run when the workflow loads, before Snakemake builds its plan, as data.

The snakemake the user started (not a job's own snakemake, which checks nothing) looks at the
campaign on disk and stops, or repairs what Snakemake itself would get wrong:

1. it takes the folder's lock (:mod:`scripts.campaign.locks`; not in a dry run, nor under
   ``--nolock``;
   ``--unlock`` only clears the lock record and checks nothing);
2. a finished run whose log changed since it was sealed stops the workflow; a corrupt
   ``result.json`` of an intact run is removed, so that step 5 parses it again
   (:mod:`scripts.run.seals`);
3. finished runs made under another configuration, dataset or environment stop it
   (:func:`scripts.campaign.plan.incomparable_runs`);
4. a fetched source at another commit is fetched again; an image stamp that no longer matches
   the config (or whose image is gone) is removed, so the image is rebuilt, unless finished runs
   used that image: then it stops (the backend's ``stale_reason``, :mod:`scripts.run.backends`);
5. a run whose ``result.json`` is missing but whose ``mlperf.log`` and ``run.json`` exist is
   parsed (no training): Snakemake would train it again for its ``result.json``;
6. derived files that no longer describe the runs on disk are removed, so they are rebuilt.
   Snakemake does not redo a job because one of its *inputs* was deleted: an up-to-date
   ``summary.csv`` hides a deleted ``run_04/mlperf.log``, yet deleting a run's log is the
   natural way to ask for that run again. So a run's ``result.json`` whose ``mlperf.log`` or
   ``run.json`` is gone goes, and a benchmark's ``runs.csv`` and ``summary.csv`` go when any of
   their runs lacks its result; a download whose configured checksum changed is kept as
   ``<file>.outdated``, with the manifest and unpacked tree built from it removed. Raw run logs
   are never touched;
7. a benchmark whose table settings (:func:`scripts.campaign.plan.table_settings`: statistics,
reference
   system, max_nonconverged) differ from the ones recorded in ``.snakemake/table-settings/``
   loses its summary, comparison, leaderboard, plots and report, which are made again: the
   workflow profile's rerun triggers never redo a rule for its params. Without a record (a
   campaign of an older workflow) the settings are recorded and nothing is removed;
8. a dataset tree that differs from its manifest (or is gone while finished runs used it) is
   unpacked again (:func:`scripts.data.restore.restore_tree`).

Before step 2, a real run takes the lock of each of its datasets (:func:`hold_datasets`,
:mod:`scripts.data.datalock`), so that a campaign in another working folder with the same data_dir
is never seen, or undone, half way; each is let go once the dataset is complete.

A dry run (``-n``, ``--summary``, ``--lint``...) changes nothing and says what a real run would
do; steps 2 and 3 and the stop of step 4 stop it as they stop a real run.

The shape: :func:`gather` reads what the checks need into a :class:`State` (the only reading
besides :func:`apply`); :func:`plan_actions` turns it into a list of :class:`Action` (pure: it
follows the effect of each action on the later checks, e.g. a removed corrupt result is parsed
in step 5); :func:`apply` performs them in order, or in a dry run reports what a real run does,
and stops at the first :class:`Refuse` by raising :class:`Refused` (one message, for the
workflow to show). The lock is planned from the :class:`Mode` alone (:func:`lock_actions`) and
taken before anything else is read: whether another snakemake holds the folder can only be
decided atomically, as it is taken. :func:`run` does the three in order; the rules call it once.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.campaign import archive as campaign
from scripts.campaign import locks, plan
from scripts.core import config as cfg
from scripts.core import formats, hashing, layout
from scripts.core.records import differences
from scripts.data import datalock
from scripts.data.checksums import HASHES
from scripts.data.download_policy import DEADLINE_S, MIN_BYTES_PER_S, Policy
from scripts.data.errors import DatasetError
from scripts.data.fetch import fetch, outdated_download
from scripts.data.restore import restore_tree
from scripts.data.sources import expand_url, run_script, sources
from scripts.data.tree import tree_manifest_path
from scripts.run import backends, result_json, seals
from scripts.run.backends import image as images
from scripts.run.backends.base import Backend

Say = Callable[[str], None]  # how a warning is shown (Snakemake's logger)
Stale = tuple[Path, str]  # (path, why it is out of date)

DRY_RUN_FLAGS = {
    "--dry-run",
    "--dryrun",
    "--summary",
    "--detailed-summary",
    "--lint",
    "--list-changes",
    "--lc",
    "--list-code-changes",
    "--list-input-changes",
    "--list-params-changes",
    "--dag",
    "--rulegraph",
    "--filegraph",
    "--d3dag",
    "--list-rules",
    "--list",
    "--list-target-rules",
    "--lt",
    "--report",
}
TABLES = ("runs.csv", "evals.csv", "summary.csv")  # the tables built from the result files
# a benchmark's files that plan.table_settings shape (and its plots/*.png): made again when the
# settings differ from the recorded ones, because the profile's rerun-triggers ([mtime, input])
# never redo a rule for its params
SETTINGS_FILES = (
    "summary.csv", "summary.partial.csv", "comparison.csv", "leaderboard.csv", "report.html"
)  # fmt: skip


class Refused(Exception):
    """The workflow must stop before its plan is built (the message says why and what to do)."""


def is_dry_run(argv: Sequence[str]) -> bool:
    """Whether snakemake's command line asks only to look (dry run, summary, lint...)."""
    for arg in argv:
        if arg in DRY_RUN_FLAGS or arg.split("=")[0] in DRY_RUN_FLAGS:
            return True
        if (
            arg.startswith("-")
            and not arg.startswith("--")
            and "n" in arg[1:]
            and arg[1:].isalpha()
        ):
            return True  # -n, -np, -pn ...
    return False


@dataclass(frozen=True)
class Mode:
    """What this snakemake was asked to do, from its command line and exec mode."""

    argv: tuple[str, ...]
    dry_run: bool
    unlock: bool  # --unlock: clear the locks, check nothing
    nolock: bool  # --nolock: take no lock (the checks still run)
    job: bool  # a job's own snakemake (cluster or subprocess executor): it checks nothing

    @classmethod
    def of(cls, argv: Sequence[str], *, job: bool = False) -> Mode:
        return cls(
            argv=tuple(argv),
            dry_run=is_dry_run(argv),
            unlock="--unlock" in argv,
            nolock="--nolock" in argv,
            job=job,
        )

    @property
    def checks(self) -> bool:
        """Whether the campaign is checked: only by the snakemake the user started, and not
        under --unlock (a check that stops it would leave Snakemake's lock files while our
        record is gone, and the next invocation could no longer name the holder)."""
        return not self.job and not self.unlock


# ---------------------------------------------------------------------------------------------
# The state: what the checks need, from the config and the disk.


@dataclass(frozen=True)
class CampaignRuns:
    """The run ids that one system of the campaign has of one benchmark."""

    benchmark: str
    system: str
    runs: tuple[str, ...]


@dataclass(frozen=True)
class RunFiles:
    """Which of a run's files exist (``dir`` is ``<root>/results/<b>/<s>/run_<id>``)."""

    system: str
    run: str
    dir: Path
    log: bool  # mlperf.log
    meta: bool  # run.json
    result: bool  # result.json


@dataclass(frozen=True)
class Incomparable:
    """Finished runs of one system that differ from the current state: run id -> what."""

    benchmark: str
    system: str
    runs: Mapping[str, list[str]]


@dataclass(frozen=True)
class SourceFacts:
    """A fetched source of a container benchmark (``build/<b>/source``) and its checkout."""

    benchmark: str
    path: Path
    head: str | None  # the commit checked out there
    commit: str  # the configured one


@dataclass(frozen=True)
class ImageFacts:
    """An existing image stamp of a container system, and why it is out of date (None: it is
    not)."""

    benchmark: str
    system: str
    stamp: Path
    why: str | None
    finished: tuple[str, ...]  # runs with a run.json (looked for only when the stamp is stale)
    engine: str = "docker"  # the system's container engine (what restores its image)


@dataclass(frozen=True)
class Remake:
    """How a dataset's missing files are made again (what the rules do): its script, or each
    file's download."""

    folder: Path
    script: tuple[str, Path] | None  # (command, cwd)
    downloads: Mapping[str, tuple[list[str], dict[str, str]]]  # name -> (sources, checksums)
    policy: Policy

    def __call__(self, names: Sequence[str]) -> None:
        if self.script is not None:
            run_script(self.script[0], self.script[1], self.folder)
            return
        for name in names:
            sources, expected = self.downloads[name]
            fetch(sources, self.folder / name, expected, self.policy)


@dataclass(frozen=True)
class DatasetFacts:
    """A benchmark's unpacked dataset tree (``<data_dir>/<b>/dataset``) and its verification."""

    tree: Path  # as the rules name it (relative to the working directory)
    files: list[dict[str, Any]]
    remake: Remake
    tree_is_dir: bool
    verified: bool  # its manifest.json (the verified files) exists
    finished_runs: bool | None  # a run.json under results/<b>; None: not looked for (not needed)
    max_unpacked_bytes: int | None = None  # config dataset.max_unpacked_bytes


@dataclass(frozen=True)
class BenchmarkFacts:
    """One benchmark of the config: its runs on disk, tables, downloads and dataset tree."""

    name: str
    runs: tuple[RunFiles, ...]  # every run of every system of the campaign that has its runs
    tables: frozenset[str]  # which of TABLES exist
    quality: dict[str, Any]
    time_to_train: str
    stale_downloads: tuple[Stale, ...] | Refuse
    dataset: DatasetFacts | None  # None: the benchmark has no dataset files
    compliance_ruleset: str | None = None  # plan.compliance_ruleset: None for a non-MLPerf one
    # what the tables are computed with (plan.table_settings), and what the last invocation
    # recorded (None: no record, e.g. a campaign of an older workflow); the derived files of
    # SETTINGS_FILES that exist
    settings: dict[str, Any] | None = None
    recorded_settings: dict[str, Any] | None = None
    settings_files: tuple[Path, ...] = ()


@dataclass(frozen=True)
class State:
    """Everything :func:`plan_actions` decides on. A stage that could not be read (a file of a
    newer workflow, a config error) holds the :class:`Refuse` that stops the workflow there."""

    mode: Mode
    root: Path  # the working directory (absolute)
    seals: tuple[seals.SystemCheck, ...] | Refuse = ()
    incomparable: tuple[Incomparable, ...] | Refuse = ()
    sources: tuple[SourceFacts, ...] = ()
    images: tuple[ImageFacts | Refuse, ...] = ()
    benchmarks: tuple[BenchmarkFacts, ...] = ()


# ---------------------------------------------------------------------------------------------
# The actions: each one is data, and does what it says in apply().


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


# ---------------------------------------------------------------------------------------------
# Stale derived files (pure, on gathered facts) and the readers and remover they need.


def stale_derived_files(
    root: Path, benchmark: str, runs: Iterable[RunFiles], tables: Iterable[str]
) -> list[Stale]:
    """(path, reason) of each derived file that must be rebuilt, of those that exist: a run's
    result.json whose mlperf.log or run.json is gone, and the benchmark's runs.csv and
    summary.csv (of ``tables``, those that exist) when any run has no result."""
    stale: list[Stale] = []
    incomplete: list[str] = []
    for r in runs:
        raw_missing = [n for n, there in (("mlperf.log", r.log), ("run.json", r.meta)) if not there]
        if r.result and raw_missing:
            stale.append((r.dir / "result.json", f"its {' and '.join(raw_missing)} is gone"))
            incomplete.append(f"{r.system}/run_{r.run}")
        elif not r.result:
            incomplete.append(f"{r.system}/run_{r.run}")
    if incomplete:
        what = ", ".join(incomplete[:5]) + (" ..." if len(incomplete) > 5 else "")
        for name in ("runs.csv", "summary.csv"):
            if name in tables:
                path = root / "results" / benchmark / name
                stale.append((path, f"run(s) {what} of {benchmark} have no result yet"))
    return stale


def unparsed_runs(runs: Iterable[RunFiles]) -> list[RunFiles]:
    """Runs whose mlperf.log and run.json exist but whose result.json does not (it was deleted,
    or its writer was killed): parsing them again needs no training."""
    return [r for r in runs if not r.result and r.log and r.meta]


def runs_on_disk(
    root: Path, benchmark: str, runs: Mapping[str, Sequence[str]]
) -> tuple[RunFiles, ...]:
    """Which files each run of ``runs`` (system -> its run ids) has."""
    found = []
    for system, ids in runs.items():
        if not (root / "results" / benchmark / system).is_dir():
            # no run of it yet (a fresh campaign): one stat instead of three per run
            found += [
                RunFiles(
                    system, run, layout.run_dir(root, benchmark, system, run), False, False, False
                )
                for run in ids
            ]
            continue
        for run in ids:
            d = layout.run_dir(root, benchmark, system, run)
            found.append(
                RunFiles(
                    system,
                    run,
                    d,
                    log=(d / "mlperf.log").exists(),
                    meta=(d / "run.json").exists(),
                    result=(d / "result.json").exists(),
                )
            )
    return tuple(found)


def stale_downloads(dataset_dir: Path, files: Sequence[dict[str, Any]]) -> list[Stale]:
    """Downloads whose configured checksum changed since they were fetched, and the manifest
    and unpacked dataset built from them (``dataset_dir`` is <data_dir>/<benchmark>)."""
    stale: list[Stale] = []
    why = outdated_manifest(dataset_dir / "manifest.json", files)
    if why:
        stale += [
            (dataset_dir / derived, why)
            for derived in ("manifest.json", "dataset")
            if (dataset_dir / derived).exists()
        ]
    for f in files:
        dest = dataset_dir / "download" / f["name"]
        why = outdated_download(dest, f) if dest.exists() else None
        if why:
            stale.append((dest, why))
            stale += [
                (dataset_dir / derived, f"built from {f['name']}, which is outdated")
                for derived in ("manifest.json", "dataset")
                if (dataset_dir / derived).exists()
            ]
    return stale


def outdated_manifest(manifest: Path, files: Sequence[dict[str, Any]]) -> str | None:
    """Why a dataset manifest no longer describes the configured files (another file list, or a
    changed checksum, e.g. of a dataset made by a script), or None."""
    try:
        recorded = {e["name"]: e for e in formats.read_json(manifest, "manifest.json")["files"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if set(recorded) != {f["name"] for f in files}:
        return "the configured dataset files changed"
    changed = [
        f"{f['name']} {a}"
        for f in files
        for a in ("sha256", "md5")
        if a in f and recorded[f["name"]].get(a) not in (None, f[a])
    ]
    return f"the configured checksum of {', '.join(changed)} changed" if changed else None


def remove_stale(stale: Sequence[Stale]) -> None:
    """Remove what :func:`stale_derived_files` and :func:`stale_downloads` found; an outdated
    download is kept as ``<file>.outdated``."""
    for path, _ in stale:
        if path.parent.name == "download":
            os.replace(path, path.with_name(f"{path.name}.outdated"))
        elif path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def describe_stale(stale: Sequence[Stale], root: Path) -> str:
    return "\n".join(f"  {shlex.quote(str(p.relative_to(root)))}: {reason}" for p, reason in stale)


# ---------------------------------------------------------------------------------------------
# gather: the reading.


def campaign_runs(config: Mapping[str, Any]) -> tuple[CampaignRuns, ...]:
    """Every (benchmark, system) of the campaign that has runs, with its run ids, in order."""
    return tuple(
        CampaignRuns(b, s, tuple(plan.system_run_ids(config, b, s)))
        for b in config["benchmarks"]
        for s in plan.benchmark_systems(config, b)
    )


def gather(
    config: Mapping[str, Any],
    root: Path,
    argv: Sequence[str],
    *,
    job: bool = False,
    workflow_dir: Path,
) -> State:
    """What the checks need: the mode; for the snakemake the user started, the campaign and
    what is on disk. ``root`` is the working directory; ``job``: this is a job's own snakemake
    (Snakemake's exec mode); ``workflow_dir`` expands ``{workflow_dir}`` in the config. Reads
    (and updates the seal cache: :func:`scripts.run.seals.check_system`), changes nothing else."""
    mode = Mode.of(argv, job=job)
    if not mode.checks:
        return State(mode, root)
    runs = campaign_runs(config)
    return State(
        mode,
        root,
        seals=_gather_seals(Path(os.path.relpath(root)), runs),
        incomparable=_gather_comparability(config, root, runs),
        sources=_gather_sources(config, root, runs),
        images=_gather_images(config, root, runs, workflow_dir),
        benchmarks=tuple(
            _gather_benchmark(config, root, b, runs, workflow_dir) for b in config["benchmarks"]
        ),
    )


def _gather_seals(
    root: Path, runs: Sequence[CampaignRuns]
) -> tuple[seals.SystemCheck, ...] | Refuse:
    # ``root`` relative: the messages name results/... as the user sees them
    try:
        return tuple(seals.check_system(root, c.benchmark, c.system, c.runs) for c in runs)
    except formats.NewerFormat as exc:
        return Refuse(str(exc))


def _gather_comparability(
    config: Mapping[str, Any], root: Path, runs: Sequence[CampaignRuns]
) -> tuple[Incomparable, ...] | Refuse:
    data_dir = root / config["data_dir"].rstrip("/")
    found = []
    try:
        for c in runs:
            current = plan.current_state(
                plan.comparability(config, c.benchmark, c.system),
                manifest=data_dir / c.benchmark / "manifest.json",
                environment=root / "results" / c.benchmark / c.system / "environment.json",
                dataset_tree=data_dir / c.benchmark / "dataset.manifest.json",
            )
            bad = plan.incomparable_runs(root, c.benchmark, c.system, c.runs, current)
            if bad:
                found.append(Incomparable(c.benchmark, c.system, bad))
    except (cfg.ConfigError, formats.NewerFormat) as exc:
        return Refuse(str(exc))
    return tuple(found)


def _image_pairs(config: Mapping[str, Any], runs: Sequence[CampaignRuns]) -> list[tuple[str, str]]:
    """(benchmark, system) of the campaign's systems whose backend runs in an image."""
    return [(c.benchmark, c.system) for c in runs if _backend(config, c.system).has_image()]


def _backend(config: Mapping[str, Any], system: str) -> Backend:
    return backends.get(config["systems"][system]["backend"])


def _container(config: Mapping[str, Any], benchmark: str) -> dict[str, Any]:
    return config["benchmarks"][benchmark].get("implementation", {}).get("container") or {}


def _gather_sources(
    config: Mapping[str, Any], root: Path, runs: Sequence[CampaignRuns]
) -> tuple[SourceFacts, ...]:
    found = []
    for benchmark in dict.fromkeys(b for b, _ in _image_pairs(config, runs)):
        source = _container(config, benchmark).get("source") or {}
        src = root / "build" / benchmark / "source"
        if source.get("git") and src.is_dir():
            found.append(SourceFacts(benchmark, src, campaign.git_head(src), source["commit"]))
    return tuple(found)


def _gather_images(
    config: Mapping[str, Any], root: Path, runs: Sequence[CampaignRuns], workflow_dir: Path
) -> tuple[ImageFacts | Refuse, ...]:
    found: list[ImageFacts | Refuse] = []
    for benchmark, system in _image_pairs(config, runs):
        stamp = root / "results" / benchmark / system / "image.json"
        if not stamp.exists():
            continue
        try:
            spec = images.image_spec(config, benchmark, system, workflow_dir)
            why = _backend(config, system).stale_reason(stamp, spec)
        except (cfg.ConfigError, formats.NewerFormat) as exc:
            found.append(Refuse(str(exc)))
            break  # the workflow stops here
        finished = ()
        if why:
            finished = tuple(
                r
                for r in plan.run_ids(config["benchmarks"][benchmark]["runs"])
                if (layout.run_dir(root, benchmark, system, r) / "run.json").exists()
            )
        engine = _backend(config, system).name
        found.append(ImageFacts(benchmark, system, stamp, why, finished, engine))
    return tuple(found)


def _gather_benchmark(
    config: Mapping[str, Any],
    root: Path,
    benchmark: str,
    runs: Sequence[CampaignRuns],
    workflow_dir: Path,
) -> BenchmarkFacts:
    bench = config["benchmarks"][benchmark]
    data_dir = config["data_dir"].rstrip("/")
    files = bench.get("dataset", {}).get("files", [])
    try:
        downloads: tuple[Stale, ...] | Refuse = tuple(
            stale_downloads(root / data_dir / benchmark, files)
        )
    except formats.NewerFormat as exc:
        downloads = Refuse(str(exc))
    tables = root / "results" / benchmark
    return BenchmarkFacts(
        name=benchmark,
        runs=runs_on_disk(
            root, benchmark, {c.system: c.runs for c in runs if c.benchmark == benchmark}
        ),
        tables=frozenset(t for t in TABLES if (tables / t).exists()),
        settings=plan.table_settings(config, benchmark),
        recorded_settings=_recorded_settings(root, benchmark),
        settings_files=tuple(
            [tables / t for t in SETTINGS_FILES if (tables / t).exists()]
            + sorted((tables / "plots").glob("*.png"))
        ),
        quality=bench["quality"],
        time_to_train=bench["log"]["time_to_train"],
        compliance_ruleset=plan.compliance_ruleset(bench),
        stale_downloads=downloads,
        dataset=_gather_dataset(config, root, benchmark, workflow_dir, bool(downloads))
        if files
        else None,
    )


def _settings_record(root: Path, benchmark: str) -> Path:
    return root / layout.TABLE_SETTINGS / f"{benchmark}.json"


def _recorded_settings(root: Path, benchmark: str) -> dict[str, Any] | None:
    """The settings the last invocation recorded for a benchmark's tables; None without a
    record, or with one that is not a JSON object (it is written again)."""
    try:
        found = json.loads(_settings_record(root, benchmark).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _gather_dataset(
    config: Mapping[str, Any], root: Path, benchmark: str, workflow_dir: Path, may_go: bool
) -> DatasetFacts:
    """``may_go``: a stale download may remove the tree or its verification before it is
    restored; only then, or when one of them is missing, are finished runs looked for."""
    ds = config["benchmarks"][benchmark]["dataset"]
    data_dir = config["data_dir"].rstrip("/")
    tree = Path(data_dir) / benchmark / "dataset"
    tree_is_dir = (root / tree).is_dir()
    verified = (root / tree).with_name("manifest.json").exists()
    finished = None
    if may_go or not tree_is_dir or not verified:
        finished = any((root / "results" / benchmark).glob("*/run_*/run.json"))
    script = ds.get("script") if not ds.get("mirror") else None  # a mirror wins
    folder = Path(f"{data_dir}/{benchmark}/{'generated' if script else 'download'}")
    d = config["download"]
    remake = Remake(
        folder=folder,
        script=(script["command"], Path(expand_url(script["cwd"], workflow_dir)))
        if script
        else None,
        downloads={
            f["name"]: (
                sources(f, ds.get("mirror"), workflow_dir),
                {a: f[a] for a in HASHES if a in f},
            )
            for f in ds.get("files", [])
        },
        policy=Policy(
            retries=d["retries"],
            backoff_s=d["backoff_s"],
            timeout_s=d["timeout_s"],
            progress=d["progress"],
            deadline_s=d.get("deadline_s", DEADLINE_S),
            min_bytes_per_s=d.get("min_bytes_per_s", MIN_BYTES_PER_S),
        ),
    )
    return DatasetFacts(
        tree,
        ds.get("files", []),
        remake,
        tree_is_dir,
        verified,
        finished,
        ds.get("max_unpacked_bytes"),
    )


# ---------------------------------------------------------------------------------------------
# The plan (pure).


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
        plan.incomparable_message(i.benchmark, i.system, dict(i.runs)) for i in state.incomparable
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
        actions.append(RecordTableSettings(_settings_record(state.root, b.name), b.settings))
    if stale:
        if not state.mode.dry_run:
            disk.removed.update(p for p, _ in stale)
        actions.insert(0, RemoveStale(tuple(stale), state.root))
    return actions


def _dataset_actions(state: State, disk: _Disk) -> list[Action]:
    actions: list[Action] = []
    for b in state.benchmarks:
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


# ---------------------------------------------------------------------------------------------
# apply, and the one call of the rules.


def apply(actions: Iterable[Action], dry_run: bool, warn: Say) -> None:
    """Do each action in order (a dry run reports what a real run does and changes nothing,
    except what each action says it does in a dry run too); raises :class:`Refused` at a
    :class:`Refuse`, a held lock or a tree that cannot be unpacked again."""
    for action in actions:
        action.apply(dry_run, warn)


def run(
    config: Mapping[str, Any],
    root: Path,
    argv: Sequence[str],
    *,
    job: bool,
    workflow_dir: Path,
    warn: Say,
) -> None:
    """The load-time checks: the lock, then the datasets' locks (:func:`hold_datasets`), then
    what :func:`gather` finds, planned and applied."""
    mode = Mode.of(argv, job=job)
    apply(lock_actions(mode, root), mode.dry_run, warn)
    if mode.checks:
        held = hold_datasets(config, root, mode, warn)
        state = gather(config, root, argv, job=job, workflow_dir=workflow_dir)
        apply(plan_actions(state), mode.dry_run, warn)
        let_go_when_complete(held)


def hold_datasets(
    config: Mapping[str, Any], root: Path, mode: Mode, warn: Say
) -> list[tuple[datalock.Held, Path]]:
    """Take the lock of every dataset of the campaign (``<data_dir>/<b>.lock``, in name order)
    before anything of it is read, waiting while another process (a campaign in another
    working folder with the same data_dir) fetches, verifies or unpacks it: the waiting line
    names it. So this campaign sees the dataset as that one made it, and plans no job that
    would remove it. Not in a dry run (nothing changes). Returns each lock with the dataset's
    tree; raises :class:`Refused` after config ``data_lock_wait_s``."""
    if not mode.checks or mode.dry_run:
        return []
    data_dir = config["data_dir"].rstrip("/")
    wait = config.get(datalock.WAIT_KEY, datalock.DEFAULT_WAIT_S)
    token = datalock.campaign_token()  # the campaign's jobs go on under its locks
    held = []
    for b in campaign_datasets(config, root, _targets(mode.argv)):
        what = f"making {data_dir}/{b} (fetch, verify, unpack) for its campaign"
        try:
            lock = datalock.take(datalock.lock_path(root / data_dir, b), what, wait, warn, token)
        except datalock.DataLocked as exc:
            raise Refused(str(exc)) from None
        held.append((lock, root / data_dir / b / "dataset"))
    return held


def _targets(argv: Sequence[str]) -> list[str]:
    """The targets on snakemake's command line (``argv`` as sys.argv)."""
    # lazy: snakemake's own parser, loaded already in the snakemake that runs this
    from snakemake.cli import get_argument_parser

    try:
        return [str(t) for t in get_argument_parser().parse_known_args(argv[1:])[0].targets]
    except SystemExit:  # a command line snakemake itself refuses: it says why
        return []


def campaign_datasets(config: Mapping[str, Any], root: Path, targets: Sequence[str]) -> list[str]:
    """The benchmarks (with dataset files, in name order) whose dataset an invocation with
    ``targets`` may make: those a target lies under (``results/<b>`` or ``<data_dir>/<b>``),
    or all of them when a target lies under none (no target: the default one, a rule name)."""
    names = sorted(b for b, bench in config["benchmarks"].items()
                   if bench.get("dataset", {}).get("files"))  # fmt: skip
    data_dir = root / config["data_dir"].rstrip("/")
    wanted: set[str] = set()
    for target in targets:
        path = Path(os.path.abspath(root / target))
        under = {
            b
            for b in config["benchmarks"]
            if path.is_relative_to(root / "results" / b) or path.is_relative_to(data_dir / b)
        }
        if not under:
            return names
        wanted |= under
    return sorted(wanted & set(names)) if targets else names


def let_go_when_complete(held: Sequence[tuple[datalock.Held, Path]]) -> None:
    """Let go of each dataset's lock once its tree is complete (its manifest is written last),
    now or when this campaign's jobs have made it; else when this snakemake ends."""
    for lock, tree in held:

        def complete(tree: Path = tree) -> bool:
            return tree.is_dir() and tree_manifest_path(tree).exists()

        if complete():
            lock.release()
        else:
            datalock.release_when(lock, complete)


def after_success(
    config: Mapping[str, Any], root: Path, argv: Sequence[str], *, job: bool, warn: Say
) -> None:
    """What the snakemake the user started does after a successful invocation."""
    mode = Mode.of(argv, job=job)
    if mode.job:
        return  # nothing to read: a job's own snakemake has no campaign to refresh
    runs = campaign_runs(config)
    apply(success_actions(mode, Path(os.path.relpath(root)), runs), mode.dry_run, warn)
