"""The state of a campaign on disk, and the derived files that a missing run makes stale.

Snakemake does not redo a job because one of its *inputs* was deleted: an up-to-date
``summary.csv`` hides a deleted ``run_04/mlperf.log``. Yet deleting a run's log is the natural
way to ask for that run again. So before the DAG is built, the workflow removes the derived files
that no longer describe what is on disk (they are rebuilt from the runs):

- a run's ``result.json`` whose ``mlperf.log`` or ``run.json`` is gone (it described a log that
  no longer exists), and
- a benchmark's ``runs.csv`` and ``summary.csv`` when any of their runs lacks its result.

Raw run logs are never touched here.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path

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
    return root / "results" / benchmark / system / f"run_{run}"


def stale_derived_files(
    root: Path, benchmark: str, systems: Iterable[str], runs: Sequence[str]
) -> list[tuple[Path, str]]:
    """(path, reason) of each derived file that must be rebuilt; only existing paths."""
    stale: list[tuple[Path, str]] = []
    incomplete: list[str] = []
    for system in systems:
        for run in runs:
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


def describe(stale: Sequence[tuple[Path, str]], root: Path) -> str:
    return "\n".join(f"  {shlex.quote(str(p.relative_to(root)))}: {reason}" for p, reason in stale)
