"""The state of a campaign on disk, and the derived files that a missing run makes stale.

Snakemake does not redo a job because one of its *inputs* was deleted: an up-to-date
``summary.csv`` hides a deleted ``run_04/mlperf.log``. Yet deleting a run's log is the natural
way to ask for that run again. So before the DAG is built, the workflow removes the derived files
that no longer describe what is on disk (they are rebuilt from the runs):

- a run's ``result.json`` whose ``mlperf.log`` or ``run.json`` is gone (it described a log that
  no longer exists), and
- a benchmark's ``runs.csv`` and ``summary.csv`` when any of their runs lacks its result.

Raw run logs are never touched here. ``python -m scripts.campaign archive|rerun`` moves
finished runs aside (kept, never deleted). Whether finished runs are still comparable with the
config is decided in ``scripts/plan.py``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from scripts import formats, layout
from scripts.dataset import outdated_download

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


def run_dir(root: Path, benchmark: str, system: str, run: str) -> Path:
    return layout.run_dir(root, benchmark, system, run)


def stale_derived_files(
    root: Path,
    benchmark: str,
    systems: Iterable[str],
    runs: Sequence[str] | Mapping[str, Sequence[str]],
) -> list[tuple[Path, str]]:
    """(path, reason) of each derived file that must be rebuilt; only existing paths.

    ``runs`` is the run ids of every system, or a mapping system -> its run ids (an import
    system has as many runs as its folder has logs)."""
    stale: list[tuple[Path, str]] = []
    incomplete: list[str] = []
    for system in systems:
        for run in runs[system] if isinstance(runs, Mapping) else runs:
            d = run_dir(root, benchmark, system, run)
            result = d / "result.json"
            raw_missing = [n for n in ("mlperf.log", "run.json") if not (d / n).exists()]
            if result.exists() and raw_missing:
                stale.append((result, f"its {' and '.join(raw_missing)} is gone"))
                incomplete.append(f"{system}/run_{run}")
            elif not result.exists():
                incomplete.append(f"{system}/run_{run}")
    if incomplete:
        what = ", ".join(incomplete[:5]) + (" ..." if len(incomplete) > 5 else "")
        for name in ("runs.csv", "summary.csv"):
            path = root / "results" / benchmark / name
            if path.exists():
                stale.append((path, f"run(s) {what} of {benchmark} have no result yet"))
    return stale


def unparsed_runs(
    root: Path,
    benchmark: str,
    systems: Iterable[str],
    runs: Mapping[str, Sequence[str]],
) -> list[Path]:
    """Run folders whose mlperf.log and run.json exist but whose result.json does not (it was
    deleted, or its writer was killed): re-parsing them needs no training."""
    found = []
    for system in systems:
        for run in runs[system]:
            d = run_dir(root, benchmark, system, run)
            if not (d / "result.json").exists() and all(
                (d / n).exists() for n in ("mlperf.log", "run.json")
            ):
                found.append(d)
    return found


def stale_downloads(dataset_dir: Path, files: Sequence[dict[str, Any]]) -> list[tuple[Path, str]]:
    """Downloads whose configured checksum changed since they were fetched, and the manifest
    and unpacked dataset built from them (``dataset_dir`` is <data_dir>/<benchmark>)."""
    stale: list[tuple[Path, str]] = []
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


def remove_stale(stale: Sequence[tuple[Path, str]]) -> None:
    """Remove what :func:`stale_derived_files` and :func:`stale_downloads` found; an outdated
    download is kept as ``<file>.outdated``."""
    for path, _ in stale:
        if path.parent.name == "download":
            os.replace(path, path.with_name(f"{path.name}.outdated"))
        elif path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


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


def describe_stale(stale: Sequence[tuple[Path, str]], root: Path) -> str:
    return "\n".join(f"  {shlex.quote(str(p.relative_to(root)))}: {reason}" for p, reason in stale)


# ---------------------------------------------------------------------------------------------
# Moving finished runs aside, and what the image check asks of git.


def git_head(path: Path) -> str | None:
    """The commit checked out in ``path``, or None."""
    out = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    return out.stdout.strip() if out.returncode == 0 else None


def archive(path: Path, root: Path) -> Path:
    """Move a system's results folder to results/archive/<benchmark>/<system>.<time>/."""
    path = path.resolve()
    benchmark, system = path.parent.name, path.name
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    dest = root / "results" / "archive" / benchmark / f"{system}.{stamp}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), dest)
    return dest


def replace_run(root: Path, benchmark: str, system: str, run: int) -> Path:
    """Move one run aside (kept, never deleted) so the next invocation redoes it. ``run`` is
    the run's number: its folder is found whatever the width of the campaign's run ids."""
    system_dir = root / "results" / benchmark / system
    try:
        src = layout.find_run_dir(system_dir, run)
    except ValueError as exc:
        raise FileNotFoundError(f"{exc}; move the one to redo aside by hand") from None
    if src is None:
        raise FileNotFoundError(f"{system_dir} has no folder of run {run}")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    dest = root / "results" / "archive" / benchmark / system / f"{src.name}.replaced-{stamp}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(src), dest)
    return dest


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scripts.campaign",
        description="Move finished runs aside (kept, never deleted) so the workflow redoes them.",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("archive", help="move results/<benchmark>/<system> to results/archive/")
    a.add_argument("path", type=Path, help="e.g. results/gnmt/local")
    r = sub.add_parser("rerun", help="move one run aside; the next invocation redoes it")
    r.add_argument("benchmark")
    r.add_argument("system")
    r.add_argument("run", type=int, help="run number, e.g. 4")
    args = p.parse_args(argv)
    root = Path.cwd()
    try:
        if args.cmd == "archive":
            if not (args.path / "environment.json").exists() and not list(args.path.glob("run_*")):
                raise FileNotFoundError(f"{args.path} is not a system's results folder")
            dest = archive(args.path, root)
            print(f"moved {args.path} to {dest.relative_to(root)}")
        else:
            dest = replace_run(root, args.benchmark, args.system, args.run)
            print(
                f"moved run {args.run} to {dest.relative_to(root)}; now run:\n"
                f"  snakemake --cores 1 results/{args.benchmark}/summary.csv"
            )
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
