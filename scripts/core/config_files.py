"""The check of ``--configfile`` arguments that runs before Snakemake reads them (and of the
free space it needs).

Snakemake 9 opens every ``--configfile`` itself, in its command-line layer
(``ConfigSettings.__post_init__``), before the Snakefile runs: a missing file or a folder gives
a 27-line traceback there, a YAML error "Config file is not valid JSON or YAML" without the
file's name. The only workflow code that runs earlier is the workflow profile
(``profiles/default/config.yaml``), which Snakemake renders with YTE: it calls
:func:`preflight`, which checks the same files and stops with one line per problem.

A config file is read by ``scripts/core/config.py``'s :func:`read_config_file` (one-line messages).
This imports nothing else: it runs at every snakemake start, and ``config.py`` imports only the
standard library and PyYAML (``jsonschema`` only when it validates).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

# what a target looks like: a file the workflow makes, or a path under its output folders
TARGET_SUFFIXES = (".csv", ".html", ".png", ".pdf", ".svg", ".tsv", ".log", ".txt")
TARGET_FOLDERS = ("results", "logs", "data")
# less free space than this on the working directory's disk: stop before Snakemake writes
MIN_FREE_BYTES = 1024 * 1024
EXAMPLE = "snakemake --cores 1 results/gnmt/summary.csv --configfile my.yaml"


def looks_like_target(value: str | Path) -> bool:
    """A path that is one of the workflow's outputs (a table, a report, a plot, or a file
    under results/, logs/ or data/ that is not YAML), not a config overlay."""
    p = Path(value)
    suffix = p.suffix.lower()
    if suffix in TARGET_SUFFIXES:
        return True
    return suffix not in (".yaml", ".yml") and len(p.parts) > 1 and p.parts[0] in TARGET_FOLDERS


def configfile_problems(values: Sequence[str | Path]) -> list[str]:
    """One line per ``--configfile`` value that Snakemake could not read as a config file."""
    # here, not at the top: the runner imports this module for disk_full_problem alone, and
    # the config's YAML loader is a fifth of its start-up
    from scripts.core.config import ConfigError, read_config_file

    problems = []
    for value in values:
        if looks_like_target(value):
            problems.append(
                f"{value} was given to --configfile but is a target: targets go before "
                f"--configfile (e.g. {EXAMPLE})"
            )
            continue
        try:
            data = read_config_file(value, "given with --configfile")
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        if not isinstance(data, dict):
            found = "nothing" if data is None else type(data).__name__
            problems.append(
                f"{value} (given with --configfile): a config file must be a mapping of keys "
                f"at the top level, found {found}"
            )
    return problems


def disk_full_problem(directory: str | Path, min_free_bytes: int = MIN_FREE_BYTES) -> str | None:
    """'the disk of <folder> is full (N KiB free)' when it has almost no free space left, else
    None (also when the folder cannot be looked at)."""
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return None
    if free >= min_free_bytes:
        return None
    return f"the disk of {Path(directory).resolve()} is full ({free // 1024} KiB free)"


def preflight(configfiles: Sequence[str | Path], directory: str | Path | None = None) -> None:
    """Check a snakemake command line before Snakemake acts on it: its ``--configfile`` values
    and the free space of its working directory. Print one line per problem and exit 1
    (called by profiles/default/config.yaml)."""
    problems = configfile_problems([str(v) for v in configfiles or []])
    full = disk_full_problem(directory or ".")
    if full:  # Snakemake would fail writing its own log and locks, a traceback per line
        problems.append(f"{full}: snakemake needs room for its log and locks; free some first")
    if problems:
        for line in problems:
            print(f"error: {line}", file=sys.stderr)
        raise SystemExit(1)
