"""Moving a campaign's finished runs aside (kept, never deleted) so that the workflow redoes
them (``python -m scripts archive`` / ``rerun``), and the commit of a fetched source.

Whether finished runs are still comparable with the current configuration, dataset and
environment is decided in :mod:`scripts.campaign.finished_runs`; the load-time checks that use
it are in :mod:`scripts.campaign.preflight`, and the derived files that a missing run makes stale
in :mod:`scripts.campaign.stale`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from scripts.core import layout


def run_dir(root: Path, benchmark: str, system: str, run: str) -> Path:
    return layout.run_dir(root, benchmark, system, run)


# ---------------------------------------------------------------------------------------------
# Moving finished runs aside, and what the source check asks of git.


def git_head(path: Path) -> str | None:
    """The commit checked out in ``path``, or None."""
    out = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    return out.stdout.strip() if out.returncode == 0 else None


def workflow_root(system_folder: Path) -> Path:
    """The working folder of the campaign a system's results folder belongs to: ``<root>`` of
    ``<root>/results/<benchmark>/<system>``, whatever folder the command runs in (``archive .``
    from inside the system's folder archives it under the campaign's results/archive/, not a
    new results/ inside it). FileNotFoundError for any other folder."""
    path = Path(system_folder).resolve()
    if path.parent.parent.name != "results" or path.parent.name == "archive" or not path.is_dir():
        raise FileNotFoundError(
            f"{system_folder} is not a system's results folder (results/<benchmark>/<system>)"
        )
    return path.parent.parent.parent


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
        prog="python -m scripts",
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
            root = workflow_root(args.path)
            dest = archive(args.path, root)
            print(f"moved {args.path.resolve()} to {dest}")
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
