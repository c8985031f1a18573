"""The state of a campaign that the load-time checks decide on (:class:`State`), and
:func:`gather`, which **reads** it from the config and the disk: the seals of finished runs,
their comparability, fetched sources and image stamps, each benchmark's runs, tables, table
settings, downloads and dataset tree. Gathering changes nothing (the seal cache aside); the
decisions are :mod:`scripts.campaign.action_plan`'s.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.campaign import archive as campaign
from scripts.campaign.actions import Refuse, Remake
from scripts.campaign.comparability import comparability, table_settings
from scripts.campaign.data_folders import CheckDataFolders
from scripts.campaign.finished_runs import current_state, incomparable_runs
from scripts.campaign.invocation import Mode
from scripts.campaign.run_specs import compliance_ruleset
from scripts.campaign.stale import (
    SETTINGS_FILES,
    TABLES,
    RunFiles,
    Stale,
    SubmissionFiles,
    runs_on_disk,
    settings_record,
    stale_downloads,
    submission_files,
)
from scripts.campaign.topology import CampaignRuns, campaign_runs, run_ids
from scripts.core import config as cfg
from scripts.core import formats, layout
from scripts.core.dataset_setting import dataset_section
from scripts.data.checksums import HASHES
from scripts.data.download_policy import DEADLINE_S, MIN_BYTES_PER_S, Policy
from scripts.data.folders import dataset_folders
from scripts.data.sources import expand_url, sources
from scripts.run import backends, seals
from scripts.run.backends.base import Backend


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
    compliance_ruleset: str | None = None  # run_specs.compliance_ruleset: None for a non-MLPerf one
    # what the tables are computed with (comparability.table_settings), and what the last invocation
    # recorded (None: no record, e.g. a campaign of an older workflow); the derived files of
    # SETTINGS_FILES that exist
    settings: dict[str, Any] | None = None
    recorded_settings: dict[str, Any] | None = None
    settings_files: tuple[Path, ...] = ()
    data_folders: CheckDataFolders | None = None  # a dataset of folders (config dataset.folders)


@dataclass(frozen=True)
class State:
    """Everything :func:`scripts.campaign.action_plan.plan_actions` decides on. A stage that
    could not be read (a file of a newer workflow, a config error) holds the :class:`Refuse`
    that stops the workflow there."""

    mode: Mode
    root: Path  # the working directory (absolute)
    seals: tuple[seals.SystemCheck, ...] | Refuse = ()
    incomparable: tuple[Incomparable, ...] | Refuse = ()
    sources: tuple[SourceFacts, ...] = ()
    images: tuple[ImageFacts | Refuse, ...] = ()
    benchmarks: tuple[BenchmarkFacts, ...] = ()
    # submission/verdict.json, where it exists (a path, or with its runs and what goes with it)
    verdict: Path | SubmissionFiles | None = None


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
        verdict=submission_files(root),
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
            current = current_state(
                comparability(config, c.benchmark, c.system),
                manifest=data_dir / c.benchmark / "manifest.json",
                environment=root / "results" / c.benchmark / c.system / "environment.json",
                dataset_tree=data_dir / c.benchmark / "dataset.manifest.json",
            )
            bad = incomparable_runs(root, c.benchmark, c.system, c.runs, current)
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
            # lazy: the image code loads only for a campaign with an image stamp
            from scripts.run.backends import image as images

            spec = images.image_spec(config, benchmark, system, workflow_dir)
            why = _backend(config, system).stale_reason(stamp, spec)
        except (cfg.ConfigError, formats.NewerFormat) as exc:
            found.append(Refuse(str(exc)))
            break  # the workflow stops here
        finished = ()
        if why:
            finished = tuple(
                r
                for r in run_ids(config["benchmarks"][benchmark]["runs"])
                if (layout.run_dir(root, benchmark, system, r) / "run.json").exists()
            )
        # the engine's command that holds the image (pyxis: docker builds it)
        backend = _backend(config, system)
        engine = str(getattr(backend, "cli", "") or backend.name)
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
    files = dataset_section(bench).get("files", [])
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
        settings=table_settings(config, benchmark),
        recorded_settings=_recorded_settings(root, benchmark),
        settings_files=tuple(
            [tables / t for t in SETTINGS_FILES if (tables / t).exists()]
            + sorted((tables / "plots").glob("*.png"))
        ),
        quality=bench["quality"],
        time_to_train=bench["log"]["time_to_train"],
        compliance_ruleset=compliance_ruleset(bench),
        stale_downloads=downloads,
        dataset=_gather_dataset(config, root, benchmark, workflow_dir, bool(downloads))
        if files
        else None,
        data_folders=CheckDataFolders(
            benchmark, root, Path(data_dir) / benchmark / "dataset", folders
        )
        if (folders := dataset_folders(dataset_section(bench), data_dir, benchmark))
        else None,
    )


def _recorded_settings(root: Path, benchmark: str) -> dict[str, Any] | None:
    """The settings the last invocation recorded for a benchmark's tables; None without a
    record, or with one that is not a JSON object (it is written again)."""
    try:
        found = json.loads(settings_record(root, benchmark).read_text())
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
