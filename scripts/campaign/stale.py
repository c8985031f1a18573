"""Derived files that no longer describe the runs on disk or the configured dataset (step 6 of
the load-time checks, :mod:`scripts.campaign.preflight`), the readers they need, and their
remover.

- :func:`stale_derived_files`, :func:`stale_verdict` (the submission's verdict) and
  :func:`unparsed_runs` are pure, on what :func:`runs_on_disk` found (:class:`RunFiles`);
- :func:`runs_on_disk`, :func:`stale_downloads` and :func:`outdated_manifest` **read the disk**
  (which run files exist, the downloads and the dataset manifest);
- :func:`remove_stale` removes what they found (an outdated download is kept as
  ``<file>.outdated``) and :func:`describe_stale` says what and why;
- :data:`TABLES` and :data:`SETTINGS_FILES` are the derived files of a benchmark that its
  runs and its table settings shape; :func:`settings_record` is where those settings were
  recorded.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.core import formats, layout
from scripts.data.fetch import outdated_download

Stale = tuple[Path, str]  # (path, why it is out of date)
TABLES = ("runs.csv", "evals.csv", "summary.csv")  # the tables built from the result files
# a benchmark's files that comparability.table_settings shapes (and its plots/*.png): made
# again when the settings differ from the recorded ones, because the profile's rerun-triggers
# ([mtime, input]) never redo a rule for its params
SETTINGS_FILES = (
    "summary.csv", "summary.partial.csv", "comparison.csv", "leaderboard.csv", "report.html"
)  # fmt: skip


def settings_record(root: Path, benchmark: str) -> Path:
    """Where the settings of a benchmark's tables were last recorded."""
    return root / layout.TABLE_SETTINGS / f"{benchmark}.json"


@dataclass(frozen=True)
class RunFiles:
    """Which of a run's files exist (``dir`` is ``<root>/results/<b>/<s>/run_<id>``)."""

    system: str
    run: str
    dir: Path
    log: bool  # mlperf.log
    meta: bool  # run.json
    result: bool  # result.json


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


@dataclass(frozen=True)
class SubmissionFiles:
    """What the submission job left (:func:`submission_files`): its verdict, the runs the
    verdict was made of (benchmark -> its systems; None: unreadable, every MLPerf run counts)
    and what goes with the verdict when it is stale (package_check.log, the trees it made)."""

    verdict: Path
    runs: Mapping[str, tuple[str, ...]] | None
    made: tuple[Path, ...] = ()


def stale_verdict(
    verdict: Path | SubmissionFiles | None, incomplete: Mapping[str, Sequence[str]]
) -> list[Stale]:
    """(path, reason) of the submission's verdict (``verdict``: submission/verdict.json where it
    exists, or :class:`SubmissionFiles`), its check log and its trees, when a run it was made of
    has no result (``incomplete``: benchmark -> its runs, ``<system>/run_<id>``): it was made
    from runs that are no longer all there (a run moved aside by ``rerun``), and Snakemake would
    not redo it for a missing input alone, nor the run. Only the verdict's own runs count (a
    system without a submission: block is not in it); the trees go too, so no old tree and no
    old SUCCESS stays beside a verdict that is gone."""
    if verdict is None:
        return []
    files = verdict if isinstance(verdict, SubmissionFiles) else SubmissionFiles(verdict, None)
    found = {
        b: [r for r in runs if files.runs is None or r.split("/")[0] in files.runs.get(b, ())]
        for b, runs in incomplete.items()
        if files.runs is None or b in files.runs
    }
    found = {b: runs for b, runs in found.items() if runs}
    if not found:
        return []
    b, runs = next(iter(found.items()))
    what = ", ".join(runs[:5]) + (" ..." if len(runs) > 5 else "")
    why = f"run(s) {what} of {b} have no result yet"
    return [(files.verdict, why)] + [(p, f"made with the verdict: {why}") for p in files.made]


def _made_names(record: Path, verdict: Mapping[str, Any]) -> list[str]:
    """The trees the submission job made: its record, and the trees an older verdict names."""
    try:
        names = json.loads(record.read_text())
    except (OSError, ValueError):
        names = []
    names = list(names) if isinstance(names, list) else []
    names += [t.get("submitter") for t in verdict.get("trees") or () if isinstance(t, dict)]
    own = (layout.SUBMISSION_VERDICT.name, layout.SUBMISSION_CHECK_LOG.name)
    return [
        n
        for n in names
        if isinstance(n, str) and layout.SUBMITTER.fullmatch(n) and n.lower() not in own
    ]


def submission_files(root: Path) -> SubmissionFiles | None:
    """**Reads the disk**: submission/verdict.json's runs and the files made with it (None
    when there is no verdict)."""
    verdict = root / layout.SUBMISSION_VERDICT
    if not verdict.exists():
        return None
    try:
        data = json.loads(verdict.read_text())
    except (OSError, ValueError):
        data = {}
    data = data if isinstance(data, dict) else {}
    said = data.get("runs")
    runs = (
        {str(b): tuple(map(str, s)) for b, s in said.items() if isinstance(s, dict)}
        if isinstance(said, dict)
        else None
    )
    log = root / layout.SUBMISSION_CHECK_LOG
    names = dict.fromkeys(_made_names(root / layout.SUBMISSION_MADE, data))
    trees = [verdict.parent / n for n in names]
    made = ([log] if log.is_file() else []) + [
        p for p in trees if p.is_dir() and not p.is_symlink()
    ]
    return SubmissionFiles(verdict, runs, tuple(made))


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
        # layout.run_dir of each run, joined once per system (10,000 runs in a dry run)
        folder = layout.system_dir(root, benchmark, system)
        if not folder.is_dir():
            # no run of it yet (a fresh campaign): one stat instead of three per run
            found += [
                RunFiles(system, run, folder / layout.run_name(run), False, False, False)
                for run in ids
            ]
            continue
        for run in ids:
            d = folder / layout.run_name(run)
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
