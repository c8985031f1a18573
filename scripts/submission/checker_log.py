"""mlperf-logging's package checker run on a submission tree, and its output read back as
problems in words.

The checker is run as its command line, ``python -m mlperf_logging.package_checker <folder>
training <ruleset> --log_output <file>`` (``package_checker/package_checker.py``, ``get_parser``
and ``main``; 4.1.68), in a subprocess: it configures the root logger, so it cannot share a
process. Its exit status says nothing (``main`` returns None whether it found errors or not):
the verdict is its last words, ``PACKAGE CHECKER FOUND NO ERRORS, SUCCESS !`` or ``PACKAGE
CHECKER FOUND ERRORS, LOOK INTO ERROR LOG LINES AND FIX THEM.`` (``check_training_package``),
and any ``ERROR`` line. Its records are ``LEVEL - message`` (its formatter ``%(levelname)s -
%(message)s``); a message may run over several lines (the seed checker joins its errors with
newlines), and those lines belong to the record above.

Each ERROR record becomes one problem (:func:`read_output`), in the words of the rule it
breaks: the seed rule (``seed_checker.py``: no two runs log the same seed from the same source
line; every run logs one), the run count (``benchmark_meta``'s result file count, exact), the
system description (its missing fields, its status spelling), the compliance checker (more
logs that do not comply than olympic scoring drops), the RCP check, and the power checker
(``power_checker.py``: a result without its ``power/<result>/`` folder, power files misnamed, a
run with another number of nodes or switches; it only warns, and counts such a result as a log
that does not comply, yet each is a problem here: the result summarizer cannot score the
folder's energy then, :func:`_power_problem`). Other WARNING records are
kept as warnings, a log's own attached to that log (the checker names the file in the INFO
record before them).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scripts.mlperf.compliance import SEED_RULE

__all__ = ["CheckerOutput", "read_output", "run_checker"]

SUCCESS = "PACKAGE CHECKER FOUND NO ERRORS, SUCCESS !"
_RECORD = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) - ?(.*)$")
_DIR = re.compile(r"Running compliance checks in dir (\S+)")
_FILE = re.compile(r"Running compliance on file: (\S+)")
_SEEDS = re.compile(r"Seed checker failed and found the following errors: (.*)", re.S)
_SAME_SEED = re.compile(
    r"Result file (\S+) logs seed (\S+) on (\S+?):(\d+)\. However, result file (\S+) already"
)
_NO_SEED = re.compile(r"Result file (\S+) logs no seed\.")
_COUNT = re.compile(r"wrong file names in directory (\S+), found (\d+), expected (\d+)")
_SYSTEM = re.compile(r"System description checker failed for (.*?) : (\[.*\])$", re.S)
_NOT_COMPLY = re.compile(r"(\d+) files do not comply, directory cannot be accepted")
_RCP = re.compile(r"RCP Test Failed: (.*)", re.S)
_RUN = re.compile(r"Run \d+/\d+$")
_SKIPPED = re.compile(r"Skipping benchmark: (\S+)")
# the power checker's findings (power_checker.py's check_power: after every log's checks, each
# about one result's power/<result>/ folder)
_POWER_NAMING = re.compile(
    r"Bad naming of (node|sw) power files in directory (\S+)/power/([^/\s]+),"
)
_POWER_MISSING = re.compile(r"Package does not contain power result for \S+: (\S+)$")
_POWER_COUNT = re.compile(r"Inconsistent number of (nodes|sw) in directory (\S+)/power/(\S+)$")
# records about a whole benchmark folder, never about the log checked last
_FOLDER_WORDS = (
    "not comply", "Running Seed Checker", "Running RCP Checker", "Detected ",
    "Unknown files in result directory", "Skipping benchmark", "Bad naming of ",
    "Package does not contain power result", "Inconsistent number of ",
)  # fmt: skip
# the messages the seed checker joins with newlines each begin so
_SEED_STARTS = ("Result file ", "Error found when querying seeds from ")
_SEED_UNREAD = re.compile(r"Error found when querying seeds from (\S+?): (.*)", re.S)
# the logs that may fail compliance and the folder still pass (package_checker.py: unet3d
# four, every other benchmark one)
_OLYMPIC_ACCEPTS = {"unet3d": 4}
# records that only repeat a failure already said in words
_SUMMARIES = (
    "System description file checker failed",
    "Seed checker failed",
)


@dataclass
class CheckerOutput:
    """What one run of the checker said: whether it passed, each problem and warning."""

    passed: bool
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Record:
    level: str
    text: str
    folder: str | None  # the benchmark folder being checked
    file: str | None  # the log being checked (only within its compliance check)


def _records(output: str) -> list[_Record]:
    """The checker's records, each with the folder and log it was about. A log is current
    from its "Running compliance on file" line until the next "Run N/M" line or a record
    about the whole folder (the olympic verdict follows the last log's checks directly)."""
    records: list[_Record] = []
    folder = file = None
    for line in output.splitlines():
        m = _RECORD.match(line)
        if m is None:
            # only an error runs over lines (the seed checker's, a list of reasons); other
            # lines are the compliance checker's own prints ("------", "Log lines had ...")
            if records and records[-1].level in ("ERROR", "CRITICAL") and line.strip():
                if not line.startswith("** Detailed log output"):
                    records[-1].text += "\n" + line
            continue
        level, text = m.group(1), m.group(2).strip()
        if d := _DIR.search(text):
            folder, file = d.group(1), None
        elif f := _FILE.search(text):
            file = f.group(1)
        elif _RUN.match(text) or any(w in text for w in _FOLDER_WORDS):
            file = None
        records.append(_Record(level, text, folder, file))
    return records


def _seed_messages(text: str) -> list[str]:
    """The seed checker's messages (it joins them with newlines, and one message may itself
    run over lines: a parse error quotes the log's lines)."""
    messages: list[str] = []
    for line in text.splitlines():
        if line.strip().startswith(_SEED_STARTS) or not messages:
            messages.append(line.strip())
        elif line.strip():
            messages[-1] += "\n" + line.strip()
    return messages


def _seed_problems(text: str) -> list[str]:
    """The seed checker's errors, each in the seed rule's words."""
    out = []
    for message in _seed_messages(text):
        if m := _SAME_SEED.search(message):
            log, seed, source, lineno, first = m.groups()
            out.append(
                f"seed rule ({SEED_RULE}): {log} logs seed {seed} from "
                f"{os.path.basename(source)}:{lineno}, as {first} does; give every run its own "
                "seed (the benchmark's seeds:, or leave seeds out: each run then gets its own)"
            )
        elif m := _NO_SEED.search(message):
            out.append(f"seed rule ({SEED_RULE}): {m.group(1)} logs no seed")
        elif m := _SEED_UNREAD.match(message):
            why = m.group(2).splitlines()[0].strip()
            if "parsing errors" in m.group(2):
                why = "it has lines that are not MLLOG JSON; its compliance warnings quote them"
            out.append(
                f"seed rule ({SEED_RULE}): the seed checker could not read {m.group(1)}: {why}"
            )
        elif message:
            out.append(f"seed rule ({SEED_RULE}): {message}")
    return out


def _system_problem(text: str, files: Mapping[str, str]) -> list[str]:
    m = _SYSTEM.search(text)
    assert m is not None
    name, reasons = m.group(1), m.group(2)
    try:
        said = [str(r) for r in ast.literal_eval(reasons)]
    except (ValueError, SyntaxError):
        said = [reasons]
    where = files.get(name, f"the system description of {name!r}")
    return [f"system description {where}: {r}" for r in said]


def _problems(
    record: _Record, failed_logs: Mapping[str, list[str]], files: Mapping[str, str]
) -> list[str]:
    """One ERROR record in words (none for a summary of what was said already)."""
    text, folder = record.text, record.folder or "the tree"
    if text in _SUMMARIES:
        return []
    if m := _SEEDS.search(text):
        return _seed_problems(m.group(1))
    if m := _COUNT.search(text):
        where, found, expected = m.groups()
        return [
            f"run count: {where} holds {found} result_*.txt files, and the round's rules want "
            f"exactly {expected} of this benchmark (benchmark_meta's count): make the "
            f"benchmark's runs: {expected}"
        ]
    if _SYSTEM.search(text):
        return _system_problem(text, files)
    if m := _NOT_COMPLY.search(text):
        logs = "; ".join(f"{log}: {', '.join(why)}" for log, why in failed_logs.items())
        accepted = _OLYMPIC_ACCEPTS.get(folder.rstrip("/").rsplit("/", 1)[-1], 1)
        return [
            f"compliance: {folder}: {m.group(1)} logs do not comply ({logs or 'see the log'}); "
            f"the package checker accepts at most {accepted} under olympic scoring"
        ]
    if m := _RCP.search(text):
        return [f"RCP check: {folder}: {m.group(1).strip()} (mlperf-logging's rcp_checker)"]
    return [f"{folder}: {text}" if record.folder else text]


def _power_problem(record: _Record) -> tuple[str, str, str] | None:
    """A power checker finding in words, in a few words (for the folder's list of logs that do
    not comply), and the result file it is about; None for another record. Each is a problem
    even when the package checker accepts one such result under olympic scoring: the result
    summarizer asserts a node file for every result of a folder with power/
    (``_compute_total_power``), so it could not score the folder's energy. (The checker names
    the run of an odd node count by its place among the runs that have a power folder, so
    with a folder missing too it may name the run after the odd one.)"""
    text, folder = record.text, record.folder or "the tree"
    rule = "mlperf-logging's power_checker"
    if m := _POWER_MISSING.search(text):
        name = m.group(1)
        short = f"power: no power/{name}/"
        said = (
            f"power: {folder}/power/{name}/ is missing: once the folder has power/, every "
            f"result file needs its power folder ({rule}; the result summarizer cannot score "
            "the folder's energy without it)"
        )
    elif m := _POWER_NAMING.search(text):
        kind, name = m.group(1), m.group(3)
        short = f"power: {kind} files misnamed"
        said = (
            f"power: {folder}/power/{name}: its {kind} files are not {kind}_0 to "
            f"{kind}_<n-1> ({rule})"
        )
    elif m := _POWER_COUNT.search(text):
        kind, name = m.group(1).replace("nodes", "node"), m.group(3)
        short = f"power: another number of {kind} files"
        said = (
            f"power: {folder}/power/{name} has another number of {kind} files than most of "
            f"the folder's runs ({rule}: every run needs the same nodes and switches)"
        )
    else:
        return None
    return said, short, f"{folder}/{name}.txt"


def _unchecked(records: list[_Record], folders: Sequence[str]) -> list[str]:
    """A benchmark folder the checker skipped or never checked: it says SUCCESS without a
    word on it (a name that is not the round's draws only a warning)."""
    out = [
        f"the package checker skipped the results of {m.group(1)}: not a benchmark of the "
        "ruleset (mlperf-logging's benchmark_meta), so nothing of them was checked"
        for r in records
        if (m := _SKIPPED.search(r.text))
    ]
    checked = {r.folder for r in records}
    out += [
        f"the package checker never checked {f} (no 'Running compliance checks in dir' for it)"
        for f in folders
        if f not in checked
    ]
    return out


def read_output(
    output: str,
    system_files: Mapping[str, str] | None = None,
    returncode: int = 0,
    folders: Sequence[str] = (),
) -> CheckerOutput:
    """The checker's output in words. ``system_files``: a system_name -> its systems json's
    path (the system description checker names the system, not its file); ``returncode``: its
    exit status (not 0: it stopped); ``folders``: the results/<system>/<benchmark> folders it
    must have checked, as it names them."""
    files = system_files or {}
    records = _records(output)
    problems: list[str] = _unchecked(records, folders)
    warnings: list[str] = []
    failed_logs: dict[str, list[str]] = {}
    for record in records:
        if _SKIPPED.search(record.text):
            continue
        if record.level == "WARNING" and (found := _power_problem(record)):
            said, short, log = found
            failed_logs.setdefault(log, []).append(short)
            problems.append(said)
        elif record.level == "WARNING":
            if record.file:
                failed_logs.setdefault(record.file, []).append(record.text)
                warnings.append(f"{record.file}: {record.text}")
            else:
                where = f"{record.folder}: " if record.folder else ""
                warnings.append(where + record.text)
        elif record.level in ("ERROR", "CRITICAL"):
            these = {
                k: v
                for k, v in failed_logs.items()
                if record.folder and k.startswith(record.folder)
            }
            problems += _problems(record, these, files)
    finished = any(r.text.startswith("PACKAGE CHECKER FOUND") for r in records)
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    last = lines[-1] if lines else "no output"
    if "Traceback (most recent call last)" in output:
        problems.append(f"the package checker stopped with an error: {last}")
    elif not finished or returncode != 0:
        problems.append(
            f"the package checker did not finish (exit status {returncode}, no verdict in its "
            f"output): {last}"
        )
    passed = not problems and any(r.text == SUCCESS for r in records)
    return CheckerOutput(passed, problems, warnings)


def run_checker(folder: Path, ruleset: str, *, cwd: Path) -> tuple[list[str], str, int]:
    """The checker's command line on ``folder`` (relative to ``cwd``, so its messages name the
    tree's paths as the user sees them), everything it printed (stdout and stderr together) and
    its exit status."""
    argv = [
        sys.executable, "-m", "mlperf_logging.package_checker", str(folder), "training", ruleset,
        "--log_output", os.devnull,
    ]  # fmt: skip
    done = subprocess.run(
        argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    return argv, done.stdout, done.returncode
