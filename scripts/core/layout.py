"""Where a run's files live, and the one format of a run id.

A run id is the run's number with at least two digits, widened to the digits of the campaign's
run count (``01`` .. ``10`` for 10 runs, ``001`` .. ``120`` for 120), so ids sort as numbers and
name the same run everywhere: its folder ``results/<benchmark>/<system>/run_<id>``, its running
marker ``logs/running/<benchmark>/<system>/run_<id>.json``, its failed logs
``logs/failed/<benchmark>/<system>/run_<id>.attempt<N>.<time>.log``, ``status`` and ``rerun``.

The run's *number* is an ``int`` everywhere else (``RunSpec.run``, ``run.json``'s ``"run"``,
seeds, ``rerun``'s argument): :func:`run_id` makes the id from it, :func:`parse_run_id` reads
it back (a wildcard, a folder's name), and nothing else does either.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RUN_ID = re.compile(r"\d{2,}")
# a benchmark's, system's or file's name in a rule's path, as the schema has them; (?!\n): a
# target ending in a newline is no rule's output (Python's $ also matches before a final newline)
NAME_WILDCARD = r"[A-Za-z0-9][A-Za-z0-9_.-]*(?!\n)"
# a published MLPerf result folder's logs: every result_*.txt, as mlperf-logging's result
# summarizer globs them (result_<N>.txt with N from 0 or 1; Lambda's v4.1
# result_<datestamp>_NN.txt, Intel's v0.7 result_1_1n4r_32k_1592751389.txt)
RESULT_FILE_RE = re.compile(r"^result_(.*)\.txt$", re.S)
_DIGITS = re.compile(r"(\d+)")
# the compliance checker's verdicts, one small JSON per log sha256 (scripts/mlperf/compliance.py),
# relative to the folder snakemake runs in: derived data, like Snakemake's own metadata
COMPLIANCE_CACHE = Path(".snakemake") / "compliance"
# the import batches' plans (scripts/workflow/import_jobs.py import_plan_file), named by their
# content
IMPORT_PLANS = Path(".snakemake") / "import-plans"
# per benchmark, what its tables were last computed with (scripts/campaign/preflight.py)
TABLE_SETTINGS = Path(".snakemake") / "table-settings"
# the last configuration that passed the schema check, by its digest (scripts/core/config.py
# validate): the same one is not checked again at the next start
VALID_CONFIG = Path(".snakemake") / "valid-config"
RUN_NAME = re.compile(rf"run_({RUN_ID.pattern})")
# the submission job's plans (scripts/submission/plan.py), named by their content, and its
# verdict (snakemake submission/verdict.json, beside the trees submission/<submitter>/)
SUBMISSION_PLANS = Path(".snakemake") / "submission-plans"
SUBMISSION_VERDICT = Path("submission") / "verdict.json"
# the checker's whole output, and the names of the trees the submission job made (only those
# are ever removed: a folder a user put under submission/ is theirs)
SUBMISSION_CHECK_LOG = Path("submission") / "package_check.log"
SUBMISSION_MADE = Path("submission") / ".trees-made.json"
# a submitter's folder name (the config schema's name pattern)
SUBMITTER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def run_id(run: int, runs: int) -> str:
    """The id of run ``run`` (1-based) of a campaign of ``runs`` runs."""
    if run < 1:
        raise ValueError(f"run numbers start at 1, not {run}")
    width = max(2, len(str(max(runs, run))))
    return f"{run:0{width}d}"


def run_ids(runs: int) -> list[str]:
    """The ids of every run of a campaign of ``runs`` runs: ``01``, ``02``, ..."""
    return [run_id(i, runs) for i in range(1, runs + 1)]


def parse_run_id(run_id: str) -> int:
    """The number of the run with id ``run_id`` (``07`` and ``007`` -> 7); ValueError for text
    that is not a run id."""
    if not RUN_ID.fullmatch(run_id):
        raise ValueError(f"{run_id!r} is not a run id (two or more digits, e.g. 07)")
    return int(run_id)


def run_name(run_id: str) -> str:
    """``run_<id>``: the name of a run's folder, and the stem of its marker and failed logs."""
    return f"run_{run_id}"


def run_number(name: str) -> int | None:
    """The run number of a run folder's name (``run_105`` -> 105), or None for another name."""
    m = RUN_NAME.fullmatch(name)
    return parse_run_id(m.group(1)) if m else None


def system_dir(root: Path, benchmark: str, system: str) -> Path:
    """The folder of a system's runs of a benchmark (and its environment.json)."""
    return root / "results" / benchmark / system


def run_dir(root: Path, benchmark: str, system: str, run_id: str) -> Path:
    return system_dir(root, benchmark, system) / run_name(run_id)


def running_marker(root: Path, benchmark: str, system: str, run_id: str) -> Path:
    """The marker a run's runner keeps while its trainer is alive."""
    return root / "logs" / "running" / benchmark / system / f"{run_name(run_id)}.json"


def failed_logs_glob(run_id: str) -> str:
    """The glob, in logs/failed/<benchmark>/<system>, of one run's kept failed logs."""
    return f"{run_name(run_id)}.attempt*.log"


def failed_log_name(run_id: str, attempt: int, stamp: str) -> str:
    return f"{run_name(run_id)}.attempt{attempt}.{stamp}.log"


def find_run_dir(system_dir: Path, run: int) -> Path | None:
    """The folder of run number ``run`` in a system's results folder, whatever its id's
    width, or None; ValueError when two folders have that number (run_05 and run_005)."""
    found = sorted(d for d in system_dir.glob("run_*") if d.is_dir() and run_number(d.name) == run)
    if len(found) > 1:
        raise ValueError(f"{' and '.join(map(str, found))} are both run {run}")
    return found[0] if found else None


# ---------------------------------------------------------------------------------------------
# Published result folders (training_results_vX.Y/<submitter>/results/<system>/<benchmark>/)


def result_file_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """The order of a folder's logs: by the numbers and text of their names, numbers as
    numbers (``result_2.txt`` before ``result_10.txt``, ``result_<stamp>_09.txt`` before
    ``result_<stamp>_10.txt``). The summarizer scores the files in the order ``glob`` lists
    them, which is no order; its scores do not depend on it (olympic means sort the times),
    and run NN here is the NN-th file in this order."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in _DIGITS.split(name) if part
    )


def result_files(folder: Path) -> list[Path]:
    """The logs of a published result folder: every ``result_*.txt`` in it that is not a
    folder, as the result summarizer's ``glob('<folder>/result_*.txt')`` finds them, in the
    order of :func:`result_file_key` (an empty list for no folder, or a folder that is a
    symbolic link: a published tree is data, scripts/core/published_files.py). A listed file may
    still be a link, a FIFO or a device: reading it is refused by name, run by run."""
    if folder.is_symlink() or not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if RESULT_FILE_RE.match(p.name) and not p.is_dir()]
    return sorted(found, key=lambda p: (result_file_key(p.name), p.name))


def benchmark_folder(import_dir: Path, benchmark: Mapping[str, Any]) -> Path | None:
    """The folder of a benchmark's result_*.txt in an import system's folder: the first of
    ``<import_dir>/<mlperf_name>`` and ``<import_dir>/<alias>`` (the benchmark's
    ``folder_aliases``, e.g. Google's v0.6 ``mask`` for maskrcnn, as the result summarizer's
    ``_benchmark_alias`` reads it) that holds result files; None when none does or the
    benchmark has no mlperf_name."""
    name = benchmark.get("mlperf_name")
    if not name:
        return None
    for folder_name in (name, *benchmark.get("folder_aliases", [])):
        folder = Path(import_dir) / str(folder_name)
        if result_files(folder):
            return folder
    return None
