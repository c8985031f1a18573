"""Data folders checked against an implementation's expected-mounts.csv, as NVIDIA's mountcheck.

NVIDIA's MLPerf Training implementations (v5.x) ship ``expected-mounts.csv``
(``key,type,relative_path,num_files,num_bytes``) and their ``run.sub`` runs
``python -m mlperf_common.mountcheck --expected_mounts_csv expected-mounts.csv
--mounts_to_verify KEY:/container/path ...`` before training. This module reads the same file
and checks host folders against it, on top of the workflow's own sha256 tree manifest
(:mod:`scripts.data.tree`): it is the implementation's own statement of what its mounts hold.

The counts are mlperf-common's (``mlperf_common/mountcheck.py``, ``scan``):

- a ``file`` row is 1 file of its size (``st_size``); a ``dir`` row counts every file below it,
  recursively, and the sum of their sizes: files only, folders add nothing, an empty folder is
  0 files of 0 bytes; ``.`` is the mount itself;
- names starting with ``.`` are skipped at every level, neither listed nor counted;
- the rows come in mountcheck's order: each folder's entries sorted by name, files and folders
  together, a folder's row after the rows below it, the mounts in the order given;
- ``--extensions_to_filter_out`` (here ``filter_out``) drops the rows whose path ends with one
  of them (retinanet's ``.jpg``), while the folders above still count those files.

The check is that mountcheck's (the 2024 one that wrote the v5.1 files): each row's
(key, type, relative_path) must exist, and its num_bytes and, for a dir, its num_files match;
rows of a key with no mount given are named, mounts the csv does not name are not looked at.

Where this differs, on purpose: mountcheck follows every link; here a link is followed only
where it resolves inside the mount, as the container sees it (a link out of it, a broken one,
a link to a folder that holds it, a fifo or device is not counted; a key's problems end with
the first of them). mountcheck prints ``WARNING`` lines and carries on; :func:`check` returns
one line per problem and the command exits 1 (2: the csv or the arguments are wrong). The
file rows' num_files (always 1) is checked too. A newer mlperf-common adds a ``sparse_sha256``
column (a hash of sampled slices): it is read and not checked.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from scripts.core.hashing import write_atomic
from scripts.data.mount_walk import ROOT, MountCheckError, Walk, walk_mount

HEADER = ("key", "type", "relative_path", "num_files", "num_bytes")
NEWER_COLUMNS = ("sparse_sha256",)  # mlperf-common after v5.1 writes it; read, not checked
TYPES = ("file", "dir")
UNCOUNTED_SHOWN = 5  # entries a walk did not count, named after a key's problems


@dataclass(frozen=True)
class Expected:
    """One row of expected-mounts.csv: what ``relative_path`` under mount ``key`` holds."""

    key: str
    type: str  # "file" or "dir"
    relative_path: str  # "/"-separated, "." for the mount itself
    num_files: int
    num_bytes: int


# --- the csv ---------------------------------------------------------------------------------


def _relative_problem(rel: str) -> str | None:
    """Why ``rel`` is not a path mountcheck writes (None: it is)."""
    if rel == ROOT:
        return None
    if not rel:
        return "an empty relative_path"
    if rel.startswith("/"):
        return f"an absolute relative_path {rel!r}"
    parts = rel.split("/")
    if ".." in parts:
        return f"relative_path {rel!r} climbs out of the mount ('..')"
    if any(part in ("", ".") for part in parts):
        return f"relative_path {rel!r} is not normalized (empty or '.' part)"
    return None


def _count(value: str, where: str, column: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise MountCheckError(f"{where}: {column} {value!r} is not a whole number")
    return int(value)


def _row(fields: list[str], where: str) -> Expected:
    key, kind, rel, files, size = fields[:5]
    if not key:
        raise MountCheckError(f"{where}: an empty key")
    if kind not in TYPES:
        raise MountCheckError(f"{where}: type {kind!r} is neither 'file' nor 'dir'")
    problem = _relative_problem(rel)
    if problem:
        raise MountCheckError(f"{where}: {problem}")
    row = Expected(
        key, kind, rel, _count(files, where, "num_files"), _count(size, where, "num_bytes")
    )
    if kind == "file" and row.num_files != 1:
        raise MountCheckError(f"{where}: a file row with num_files {row.num_files}, not 1")
    return row


def read_expected(path: Path) -> list[Expected]:
    """The rows of an expected-mounts.csv, strictly: mountcheck's header (with or without the
    newer ``sparse_sha256``), every line that many comma-separated fields, known types, whole
    counts, relative paths inside the mount, no row twice. A file that breaks any of these
    would make the check say something other than what its author meant."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MountCheckError(f"{path}: cannot read the expected mounts: {exc}") from None
    lines = [line.removesuffix("\r") for line in text.removesuffix("\n").split("\n")]
    header = tuple(lines[0].split(","))
    if header not in (HEADER, HEADER + NEWER_COLUMNS):
        raise MountCheckError(
            f"{path}:1: header {lines[0]!r}, expected {','.join(HEADER)!r} (mlperf-common's)"
        )
    rows: list[Expected] = []
    seen: dict[tuple[str, str], int] = {}
    for number, line in enumerate(lines[1:], start=2):
        where = f"{path}:{number}"
        fields = line.split(",")
        if len(fields) != len(header):
            raise MountCheckError(
                f"{where}: {len(fields)} fields, expected {len(header)}: {line!r}"
            )
        row = _row(fields, where)
        first = seen.setdefault((row.key, row.relative_path), number)
        if first != number:
            raise MountCheckError(f"{where}: {row.key} {row.relative_path} again (line {first})")
        rows.append(row)
    if not rows:
        raise MountCheckError(f"{path}: no rows under the header: nothing to check")
    return rows


def format_expected(rows: Iterable[Expected]) -> str:
    """The csv text, as mountcheck --initialize writes it (no quoting: a path with a comma or
    a line break cannot be written, and is refused)."""
    lines = [",".join(HEADER)]
    for row in rows:
        if any(c in row.key + row.relative_path for c in ",\n\r"):
            raise MountCheckError(
                f"{row.key}: {row.relative_path!r}: a comma or line break in a key or path "
                "cannot be written to expected-mounts.csv (mountcheck does not quote)"
            )
        lines.append(f"{row.key},{row.type},{row.relative_path},{row.num_files},{row.num_bytes}")
    return "\n".join(lines) + "\n"


def write_expected(rows: Iterable[Expected], path: Path) -> None:
    """Write ``rows`` (from :func:`describe`) as an expected-mounts.csv, atomically."""
    write_atomic(Path(path), format_expected(rows))


# --- describe and check ----------------------------------------------------------------------


def _uncounted_lines(key: str, root: Path, walk: Walk, limit: int | None = None) -> list[str]:
    """The entries the walk did not count, one line each, the first ``limit`` of them."""
    items = list(walk.uncounted.items())
    lines = [f"{key}: {rel}: {why} at {Path(root) / rel}" for rel, why in items[:limit]]
    if limit is not None and len(items) > limit:
        lines.append(f"{key}: and {len(items) - limit:,} more entries not counted")
    return lines


def _describe_all(
    mounts: Mapping[str, Path], ends: tuple[str, ...], say: Callable[[str], None]
) -> list[Expected]:
    out: list[Expected] = []
    for key, root in mounts.items():
        walk = walk_mount(root, lambda rel: not (ends and rel.endswith(ends)))
        for line in _uncounted_lines(key, root, walk):
            say(f"not counted: {line}")
        out += [
            Expected(key, f.type, rel, f.num_files, f.num_bytes) for rel, f in walk.found.items()
        ]
    return out


def describe(
    mounts: Mapping[str, Path],
    rows: Iterable[tuple[str, str]] | None = None,
    filter_out: Sequence[str] = (),
    say: Callable[[str], None] = lambda line: None,
) -> list[Expected]:
    """What the mounts hold, as expected-mounts.csv rows: every file and folder in mountcheck's
    order less those ending with a ``filter_out`` extension, or only the (key, relative_path)
    ``rows`` asked, in their order (e.g. an older csv's rows, recounted). ``say`` is told of
    each entry not counted (a link out of the mount, ...): the csv cannot show it."""
    if rows is None:
        return _describe_all(mounts, tuple(filter_out), say)
    asked = list(rows)
    walks: dict[str, Walk] = {}
    for key in dict.fromkeys(k for k, _ in asked):
        if key not in mounts:
            raise MountCheckError(f"{key}: no mount given for it (KEY=PATH)")
        wanted = {rel for k, rel in asked if k == key}
        walks[key] = walk_mount(mounts[key], wanted.__contains__)
    out = []
    for key, rel in asked:
        found = walks[key].found.get(rel)
        if found is None:
            raise MountCheckError(f"{key}: {rel}: not in {mounts[key]}")
        out.append(Expected(key, found.type, rel, found.num_files, found.num_bytes))
    return out


def counts(num_files: int, num_bytes: int) -> str:
    """'1,170,301 files of 361,647,688,260 bytes': the figures a reader compares."""
    files = "1 file" if num_files == 1 else f"{num_files:,} files"
    return f"{files} of {num_bytes:,} {'byte' if num_bytes == 1 else 'bytes'}"


def _row_problem(row: Expected, root: Path, walk: Walk) -> str | None:
    """What is wrong with one expected row, in one line (None: it matches)."""
    head = f"{row.key}: {row.relative_path}"
    size = counts(row.num_files, row.num_bytes)
    expected = f"a {row.type} of " + (size if row.type == "dir" else size.partition(" of ")[2])
    found = walk.found.get(row.relative_path)
    if found is None:
        why = walk.uncounted.get(row.relative_path, "nothing")
        return f"{head}: {expected} expected, found {why} at {Path(root) / row.relative_path}"
    if found.type != row.type:
        got = counts(found.num_files, found.num_bytes)
        return f"{head}: {expected} expected, found a {found.type} of {got}"
    if (found.num_files, found.num_bytes) == (row.num_files, row.num_bytes):
        return None
    got = counts(found.num_files, found.num_bytes)
    line = f"{head}: {counts(row.num_files, row.num_bytes)} expected, found {got}"
    if found.uncounted:
        line += f" ({found.uncounted:,} entries below it not counted)"
    return line


def _key_problems(key: str, rows: list[Expected], root: Path | None) -> list[str]:
    if root is None:
        return [f"{key}: no mount given for it ({len(rows)} expected rows name it)"]
    wanted = {row.relative_path for row in rows}
    try:
        walk = walk_mount(root, wanted.__contains__)
    except MountCheckError as exc:
        return [f"{key}: {exc}"]
    problems = [p for p in (_row_problem(row, root, walk) for row in rows) if p]
    if problems:  # what was not counted may be why; alone it is no problem
        named = {row.relative_path for row in rows}
        walk.uncounted = {r: w for r, w in walk.uncounted.items() if r not in named}
        problems += [
            f"not counted: {line}" for line in _uncounted_lines(key, root, walk, UNCOUNTED_SHOWN)
        ]
    return problems


def check(expected: Sequence[Expected], mounts: Mapping[str, Path]) -> list[str]:
    """One line per problem (empty: the mounts hold what ``expected`` says): a key with no
    mount given, a mount that cannot be walked, a path missing or of the other type, counts
    that differ; after a key's problems, the first entries its walk did not count (links out
    of the mount, ...), which may explain them. Each mount is walked once; every row of its
    key is read from that walk."""
    by_key: dict[str, list[Expected]] = {}
    for row in expected:
        by_key.setdefault(row.key, []).append(row)
    problems: list[str] = []
    for key, rows in by_key.items():
        problems += _key_problems(key, rows, mounts.get(key))
    return problems


# --- the command line ------------------------------------------------------------------------


def parse_mount(text: str) -> tuple[str, Path]:
    """'KEY=PATH' (or mountcheck's 'KEY:PATH') as (key, path)."""
    sep = "=" if "=" in text else ":"
    key, _, path = text.partition(sep)
    if not key or not path or sep not in text:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=PATH, e.g. DATADIR=/data/x")
    return key, Path(path)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m scripts mountcheck",
        description="Check data folders against an implementation's expected-mounts.csv "
        "(file counts and bytes per key, as mlperf_common.mountcheck), or describe them as one. "
        "Exit 0: all rows match; 1: problems (one line each); 2: bad arguments or csv.",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--expected", type=Path, help="the expected-mounts.csv to check against")
    what.add_argument(
        "--describe", action="store_true", help="write the csv of what the folders hold to stdout"
    )
    p.add_argument(
        "--filter-out",
        action="append",
        default=[],
        metavar="EXT",
        help="with --describe: leave out the rows ending so, e.g. .jpg; once per extension "
        "(mountcheck's --extensions_to_filter_out)",
    )
    p.add_argument("mounts", nargs="+", type=parse_mount, metavar="KEY=PATH")
    return p


def _mounts(p: argparse.ArgumentParser, pairs: list[tuple[str, Path]]) -> dict[str, Path]:
    mounts: dict[str, Path] = {}
    for key, path in pairs:
        if key in mounts:
            p.error(f"key {key} given twice ({mounts[key]} and {path})")
        mounts[key] = path
    return mounts


def _summary(expected: list[Expected], mounts: Mapping[str, Path], csv: Path) -> str:
    roots = {r.key: r for r in expected if r.relative_path == ROOT}
    keys = dict.fromkeys(r.key for r in expected)
    parts = [
        f"{k}={mounts[k]}"
        + (f" {counts(roots[k].num_files, roots[k].num_bytes)}" if k in roots else "")
        for k in keys
    ]
    return f"mountcheck: {csv}: all {len(expected)} rows match ({'; '.join(parts)})"


def main(argv: Sequence[str] | None = None) -> int:
    p = _parser()
    args = p.parse_args(argv)
    mounts = _mounts(p, args.mounts)
    try:
        if args.describe:
            say = lambda line: print(line, file=sys.stderr)  # noqa: E731
            sys.stdout.write(format_expected(describe(mounts, None, args.filter_out, say)))
            return 0
        expected = read_expected(args.expected)
    except MountCheckError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    problems = check(expected, mounts)
    if problems:
        for line in problems:
            print(f"mountcheck: {line}", file=sys.stderr)
        print(f"mountcheck: {args.expected}: {len(problems)} problems", file=sys.stderr)
        return 1
    print(_summary(expected, mounts, args.expected))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
