"""Reading config files, with one-line messages, and the check of ``--configfile`` arguments
that runs before Snakemake reads them (and of the free space it needs).

Snakemake 9 opens every ``--configfile`` itself, in its command-line layer
(``ConfigSettings.__post_init__``), before the Snakefile runs: a missing file or a folder gives
a 27-line traceback there, a YAML error "Config file is not valid JSON or YAML" without the
file's name. The only workflow code that runs earlier is the workflow profile
(``profiles/default/config.yaml``), which Snakemake renders with YTE: it calls
:func:`preflight`, which checks the same files and stops with one line per problem.

Only the standard library and PyYAML here: this runs at every snakemake start.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

# what a target looks like: a file the workflow makes, or a path under its output folders
TARGET_SUFFIXES = (".csv", ".html", ".png", ".pdf", ".svg", ".tsv", ".log", ".txt")
TARGET_FOLDERS = ("results", "logs", "data")
# less free space than this on the working directory's disk: stop before Snakemake writes
MIN_FREE_BYTES = 1024 * 1024
EXAMPLE = "snakemake --cores 1 results/gnmt/summary.csv --configfile my.yaml"


class ConfigError(ValueError):
    """A configuration problem, with a message meant for the user."""


def yaml_error_message(path: str | Path, exc: yaml.YAMLError) -> str:
    """'<file>, line L, column C: YAML syntax error: <what is wrong>' (1-based, as editors
    count), with where the construct that it breaks began."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem is None or mark is None:
        return f"{path}: YAML syntax error: {' '.join(str(exc).split())}"
    msg = f"{path}, line {mark.line + 1}, column {mark.column + 1}: YAML syntax error: {problem}"
    context, start = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and start is not None and (start.line, start.column) != (mark.line, mark.column):
        msg += f" ({context} at line {start.line + 1}, column {start.column + 1})"
    elif context:
        msg += f" ({context})"
    return msg


def read_config_file(path: str | Path, given_as: str = "a config file") -> Any:
    """The data of a JSON or YAML config file (JSON first, as Snakemake reads them); a missing
    file, a folder, an unreadable file or a syntax error raise ConfigError in one line."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{path} ({given_as}) does not exist")
    if p.is_dir():
        raise ConfigError(f"{path} ({given_as}) is a folder, not a YAML file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} ({given_as}) cannot be read: {exc}") from None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(yaml_error_message(path, exc)) from None


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
