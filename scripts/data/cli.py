"""The dataset's command line: ``python -m scripts dataset fetch|verify|unpack|check-tree|script``
or ``folders``.

The rules (rules/dataset.smk) call it as ``python -m scripts.data.cli``. The commands (``fetch``,
``verify``, ``unpack``, ``script``) hold the dataset's lock (``--lock``,
:mod:`scripts.data.datalock`), or go on under their campaign's hold of it, so that campaigns
sharing a data_dir never make one dataset at once. A :class:`DatasetError` is one ``error:``
line and exit status 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from scripts.data import datalock
from scripts.data.checksums import HASHES
from scripts.data.download_policy import Policy
from scripts.data.errors import DatasetError, note
from scripts.data.fetch import fetch, fetched_already
from scripts.data.sources import run_script
from scripts.data.tree import tree_manifest_path, tree_problem
from scripts.data.unpack import prepare
from scripts.data.verify import verify, write_verified_manifest


def _console_say(fd: int | None) -> Callable[[str], None]:
    """Write a line to stderr and, when ``fd`` is an open descriptor, to it as well."""
    console: TextIO | None = None
    if fd is not None:
        try:
            console = os.fdopen(fd, "w", closefd=False)
        except OSError:
            console = None

    def say(message: str) -> None:
        note(message)
        if console is not None:
            try:
                console.write(message + "\n")
                console.flush()
            except OSError:
                pass

    return say


def _fetch(args: argparse.Namespace) -> None:
    expected = {a: getattr(args, a) for a in HASHES if getattr(args, a)}
    policy = Policy(
        args.retries,
        args.backoff_s,
        args.timeout_s,
        not args.no_progress,
        args.deadline_s or None,
        args.min_bytes_per_s,
    )
    if fetched_already(args.dest, expected):
        # made meanwhile by another campaign that shares the data_dir (we waited for its lock)
        print(f"{args.dest} is here already and its checksums match: not fetched again")
        return
    entry = fetch(args.url, args.dest, expected, policy, _console_say(args.console_fd))
    print(f"fetched {entry['name']}: {entry['size']} bytes, checksums match")


def _verify(args: argparse.Namespace) -> None:
    try:
        entries = verify(json.loads(args.files_json), args.dir)
    except DatasetError as exc:
        if not args.made_by_script:
            raise
        raise DatasetError(
            f"{exc}\n{args.dir} was made by the dataset script, which exited 0; to run "
            f"the script again, move the folder away (mv {args.dir} {args.dir}.old)"
        ) from None
    write_verified_manifest(args.manifest, entries)
    print(f"verified {len(entries)} files -> {args.manifest}")


def _unpack(args: argparse.Namespace) -> None:
    files = json.loads(args.files_json)
    prepare(files, args.dir, args.dest, args.manifest, None, args.max_unpacked_bytes)
    print(f"prepared {args.dest}" + (f" and {args.manifest}" if args.manifest else ""))


def _check_tree(args: argparse.Namespace) -> None:
    problem = tree_problem(args.tree, full=args.full)
    if problem:
        raise DatasetError(problem)
    print(f"{args.tree} is as unpacked ({tree_manifest_path(args.tree)})")


def _folders(args: argparse.Namespace) -> None:
    # lazy: only a dataset of folders (scripts/data/folders.py)
    from scripts.data.folders import link_folders

    folders = json.loads(args.folders_json)
    entries = link_folders(folders, args.tree, args.manifest, prefix=args.key)
    print(f"linked {len(entries)} data folders in {args.tree}, recorded in {args.manifest}")


def _script(args: argparse.Namespace) -> None:
    run_script(args.command, args.cwd, args.output)
    print(f"made {args.output}")


COMMANDS = {
    "fetch": _fetch,
    "verify": _verify,
    "unpack": _unpack,
    "check-tree": _check_tree,
    "script": _script,
    "folders": _folders,
}


def _add_fetch_parser(sub: Any) -> None:
    f = sub.add_parser(
        "fetch",
        help="fetch one file to a path from the first URL that has it, checking its checksums",
    )
    f.add_argument(
        "--url", action="append", required=True, help="a source URL (repeatable, tried in order)"
    )
    f.add_argument("--dest", type=Path, required=True, help="the file to write")
    f.add_argument("--sha256", help="expected sha256 (64 hex digits)")
    f.add_argument("--md5", help="expected md5 (32 hex digits)")
    f.add_argument("--retries", type=int, default=Policy.retries, help="retries per source")
    f.add_argument(
        "--backoff-s", type=float, default=Policy.backoff_s, help="first retry wait, seconds"
    )
    f.add_argument(
        "--timeout-s", type=float, default=Policy.timeout_s, help="network timeout, seconds"
    )
    f.add_argument(
        "--deadline-s",
        type=float,
        default=Policy.deadline_s,
        help="the longest the file's download may take, every attempt and wait included "
        "(0: no limit)",
    )
    f.add_argument(
        "--min-bytes-per-s",
        type=float,
        default=Policy.min_bytes_per_s,
        help="an attempt slower than this over --timeout-s fails (and is retried)",
    )
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.add_argument(
        "--console-fd",
        type=int,
        default=None,
        help="also write each retry's line to this open file descriptor (the download rule "
        "gives snakemake's stderr as 3, so retries reach the console while the rest goes to the "
        "job's log)",
    )


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m scripts dataset",
        description="Fetch, verify and unpack dataset files, or make them with a script.",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    _add_fetch_parser(sub)
    v = sub.add_parser("verify", help="verify every file of a dataset, write its manifest")
    v.add_argument("--files-json", required=True, help="the benchmark's dataset.files as JSON")
    v.add_argument("--dir", type=Path, required=True, help="folder holding the files")
    v.add_argument("--manifest", type=Path, required=True, help="manifest JSON to write")
    v.add_argument(
        "--made-by-script", action="store_true", help="the folder was made by dataset.script"
    )
    u = sub.add_parser("unpack", help="unpack archives and link plain files into a folder")
    u.add_argument("--files-json", required=True)
    u.add_argument("--dir", type=Path, required=True)
    u.add_argument("--dest", type=Path, required=True)
    u.add_argument(
        "--manifest", type=Path, help="the tree's manifest to write (every file's size, sha256)"
    )
    u.add_argument(
        "--max-unpacked-bytes",
        type=int,
        default=None,
        help="the most bytes the archives may unpack to (default: 100 x their size, at least "
        "1 GiB; config dataset.max_unpacked_bytes)",
    )
    c = sub.add_parser(
        "check-tree", help="check an unpacked tree against its manifest (size, mtime, sha256)"
    )
    c.add_argument("tree", type=Path, help="e.g. data/gnmt/dataset")
    c.add_argument(
        "--full", action="store_true", help="hash every file, not only those whose mtime changed"
    )
    s = sub.add_parser("script", help="make a dataset folder with a script")
    s.add_argument("--command", required=True, help="shell command; {output_dir} is replaced")
    s.add_argument("--cwd", type=Path, required=True, help="folder to run it from")
    s.add_argument("--output", type=Path, required=True, help="the folder to make")
    d = sub.add_parser("folders", help="link a dataset's existing folders, record their counts")
    d.add_argument("--folders-json", required=True, help="the benchmark's dataset.folders as JSON")
    d.add_argument("--tree", type=Path, required=True, help="the folder of links to make")
    d.add_argument("--manifest", type=Path, required=True, help="manifest JSON to write")
    d.add_argument("--key", default="dataset.folders", help="the config key, for messages")
    for command in (v, u, s, d, sub.choices["fetch"]):
        _add_lock_args(command)
    return p


def _add_lock_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lock",
        type=Path,
        default=None,
        help="the dataset's lock file (<data_dir>/<benchmark>.lock), held while the command "
        "runs unless its campaign holds it (scripts/data/datalock.py)",
    )
    p.add_argument(
        "--lock-wait-s",
        type=float,
        default=datalock.DEFAULT_WAIT_S,
        help="the longest to wait for another holder of the lock (0: no limit; config "
        "data_lock_wait_s)",
    )


# what a command holding the dataset's lock is doing (the lock file records it for others)
LOCK_WHAT = {
    "fetch": lambda a: f"fetching {a.dest.name}",
    "verify": lambda a: "verifying its files",
    "unpack": lambda a: "unpacking it",
    "script": lambda a: "running its dataset script",
    "folders": lambda a: "linking its folders",
}


@contextlib.contextmanager
def _dataset_lock(args: argparse.Namespace) -> Iterator[None]:
    """The dataset's lock (``--lock``) around a command, as :mod:`scripts.data.datalock` says."""
    lock = getattr(args, "lock", None)
    say = _console_say(getattr(args, "console_fd", None))
    try:
        wait = args.lock_wait_s or None  # 0: no limit
        with datalock.held_for_command(lock, LOCK_WHAT[args.cmd](args), wait, say):
            yield
    except datalock.DataLocked as exc:
        raise DatasetError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd in LOCK_WHAT:
            with _dataset_lock(args):
                COMMANDS[args.cmd](args)
        else:
            COMMANDS[args.cmd](args)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
