"""Importing one published MLPerf result log as a run of an import system.

A published MLPerf submission keeps each benchmark's runs as ``result_<N>.txt`` in one folder
per system and benchmark (``training_results_v0.6/NVIDIA/results/dgx1_ngc19.05_pytorch/gnmt/``).
An import system points ``import_dir`` at the system folder; run NN of a benchmark is the NN-th
``result_*.txt`` of ``<import_dir>/<mlperf_name>/`` in the order of N (``result_0.txt`` is run
01). Importing a run copies the log to the run's ``mlperf.log`` (so the results folder stays
complete when the source moves) and writes its ``run.json`` with where it came from: the source
path and sha256, and the submission's own description of the system (``submission_org``,
``submission_platform``, ``submission_entry``...). From there a run is parsed, collected and
scored exactly like a run made here.

A log that is not a valid MLPerf log of a finished run
(:func:`scripts.mlperf.log_validity.log_problems`:
random bytes, no run_start, run_stop before run_start ...) is still imported: it becomes a run
without a result (not converged, no time), named in runs.csv's ``log_problems``, as
mlperf-logging's result summarizer counts a log that fails the compliance check (dropped as the
slowest run; more than one makes the score invalid). The source is read in blocks, never whole.

The workflow imports runs in batches (:mod:`scripts.run.published.batch`); ``python -m scripts
import --source ...`` imports one (:func:`run_main`).
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scripts.core import hashing, published_files
from scripts.core.layout import result_files
from scripts.core.run_records import RunRecord
from scripts.mlperf import power
from scripts.mlperf.log_events import ParsedLog
from scripts.mlperf.log_parser import parse_file
from scripts.mlperf.log_validity import other_benchmark_problem
from scripts.mlperf.outcome import _as_int
from scripts.run import seals
from scripts.run.published.folder import published_system, scaling_factor
from scripts.run.result_json import add_result_arguments, write_result_if_asked

Parsed = ParsedLog | None  # a log parsed already, or None


# NVIDIA's run scripts print the node they ran on
_HOST_RE = re.compile(rb"^(?:Gathering sys log on|Clearing cache on|Launching on node) (\S+)", re.M)


BLOCK_BYTES = 4 << 20


LITERAL_MAX_CHARS = 64 << 10  # a longer submission_entry stays text


SUBMISSION_KEYS = ("org", "platform", "division", "status", "benchmark", "poc_name")


def source_of(folder: Path, run: int) -> Path:
    """The log of run ``run`` (1-based) in ``folder``."""
    files = result_files(folder)
    if not 1 <= run <= len(files):
        raise FileNotFoundError(
            f"{folder} has {len(files)} result_*.txt files, so no run {run}; was a file removed?"
        )
    return files[run - 1]


def _literal(value: Any) -> Any:
    """v0.6 logs write submission_entry as the repr of a Python dict, nested dicts as repr
    strings again: decode what decodes, keep the rest as text."""
    if isinstance(value, str) and value[:1] in "{[" and len(value) <= LITERAL_MAX_CHARS:
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError, RecursionError, MemoryError, TypeError):
            return value
    if isinstance(value, dict):
        return {str(k): _literal(v) for k, v in value.items()}
    return value


def submission(parsed: ParsedLog) -> dict[str, Any]:
    """What the log says about the submission and its system (v0.6 ``submission_*`` events)."""
    info: dict[str, Any] = {}
    for key in SUBMISSION_KEYS:
        ev = parsed.first(f"submission_{key}")
        if ev is not None and ev.value is not None:
            info[key] = ev.value
    entry = parsed.first("submission_entry")
    if entry is not None and entry.value is not None:
        info["entry"] = _literal(entry.value)
    return info


def import_run(
    source: Path, spec: dict[str, Any], log_path: Path, meta_path: Path, *, parsed: Parsed = None
) -> RunRecord:
    """Copy one published log to ``log_path`` and write its ``run.json`` to ``meta_path``.

    ``spec`` holds benchmark, system, run, scale, mlperf_name, config_fingerprint and
    comparability (scripts/workflow/import_jobs.py), and optionally the benchmark's ``mlperf``
    section
    (round, ruleset, olympic_drop). A log whose ``submission_benchmark`` is neither the
    benchmark's ``mlperf_name`` nor one of its ``folder_aliases`` (Google's v0.6 ``mask``
    logs of maskrcnn) is imported with that in run.json's ``import_problems``: the log of
    another benchmark is a run without a result (:mod:`scripts.run.result_json`), and the
    folder's other runs still count.

    run.json also records what scores the run as the result summarizer does: the folder's
    ``rcp_scaling_factor`` (scaling.json, 1.0 without), the benchmark's ``olympic_drop``, and
    the published system description (``system_json``: its path, sha256 and the summary
    columns of :func:`scripts.run.published.folder.system_columns`; None without a
    systems/<system>.json). ``parsed``: the copy's :class:`ParsedLog`, when the caller parsed
    it already.

    The source is read as data (:mod:`scripts.core.published_files`): a link, FIFO, device or a
    log over MAX_LOG_BYTES raises :class:`scripts.core.published_files.RefusedFile` before anything
    is written; the copy is what is parsed and hashed. A scaling.json that cannot be a factor
    is an ``import_problems`` entry (the run has no result); a folder whose number of logs is
    not the benchmark's run count (``spec["expected_runs"]``) an ``import_notes`` entry."""
    return import_copy(source, spec, log_path, meta_path, parsed=parsed)[0]


def import_copy(
    source: Path, spec: dict[str, Any], log_path: Path, meta_path: Path, *, parsed: Parsed = None
) -> tuple[RunRecord, ParsedLog]:
    """:func:`import_run`, and the copied log parsed (the batch parses each log once)."""
    digest = published_files.copy_regular(source, log_path)
    parsed = parse_file(log_path) if parsed is None else parsed
    info = submission(parsed)
    problems = _benchmark_problems(info, spec)
    try:
        factor = scaling_factor(source.parent)
    except ValueError as exc:
        factor = 1.0
        problems.append(f"{exc}: no run of this folder has a result")
    start = parsed.first("run_start")
    seed = parsed.first("seed")
    host = _host_of(log_path)  # the copy's sha256 is copy_regular's
    meta = {
        "benchmark": spec["benchmark"],
        "system": spec["system"],
        "run": spec["run"],
        "backend": "import",
        "seed": _as_int(seed.value) if seed is not None else _seed_of_result_line(parsed),
        "scale": spec["scale"],
        "command": None,
        "host": host,
        "started_utc": _utc(start.time_s) if start else None,
        "wall_s": None,
        "source": str(source.resolve()),
        "source_sha256": digest,
        "submission": info,
        "rcp_scaling_factor": factor,
        "olympic_drop": int((spec.get("mlperf") or {}).get("olympic_drop", 1)),
        "mlperf": dict(spec.get("mlperf") or {}),
        "system_json": published_system(source.parent.parent),
        "power": power.result_power(source),  # None without power/ (scripts/mlperf/power.py)
        "config_fingerprint": spec["config_fingerprint"],
        "comparability": spec["comparability"],
        "import_problems": problems,
        "import_notes": _count_notes(source.parent, spec),
    }
    fingerprinted = {"config_fingerprint": spec["config_fingerprint"]}
    meta["fingerprint"] = hashing.canonical_sha256(fingerprinted)
    # the imported copy is sealed like a run made here
    record = seals.add_seal(RunRecord.of(**meta), log_path)
    record.write(meta_path)
    return record, parsed


def _count_notes(folder: Path, spec: Mapping[str, Any]) -> list[str]:
    """A note when the folder holds another number of logs than the benchmark's run count:
    the package checker requires exactly that many (``package_checker``: "Incorrect number of
    files in dir"); the summarizer scores them all, and so does the workflow."""
    expected = spec.get("expected_runs")
    found = len(result_files(folder))
    if not isinstance(expected, int) or found == expected:
        return []
    return [
        f"{folder} holds {found} result_*.txt files; mlperf-logging's package checker requires "
        f'exactly {expected} for this benchmark ("Incorrect number of files in dir"); all '
        f"{found} are scored, as the result summarizer scores them"
    ]


def _benchmark_problems(info: Mapping[str, Any], spec: Mapping[str, Any]) -> list[str]:
    """Why a log is not one of the benchmark it is imported as: its submission_benchmark is
    neither the mlperf_name nor a folder alias (:func:`scripts.mlperf.log_validity.other_benchmark`,
    the one comparison, for runs made here too)."""
    names = [spec.get("mlperf_name"), *(spec.get("folder_aliases") or [])]
    problem = other_benchmark_problem(info.get("benchmark"), str(spec["benchmark"]), names)
    return [f"{problem} (check import_dir)"] if problem else []


def unreadable_run(
    source: Path, spec: Mapping[str, Any], log_path: Path, meta_path: Path, why: str
) -> RunRecord:
    """The run of a published log that cannot be read (gone since the plan was made, no
    permission, not a regular file): an empty ``mlperf.log`` and a run.json whose
    ``import_problems`` say why, so the run is one without a result and the folder's other
    runs are imported and scored."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    hashing.write_atomic(log_path, "")
    meta: dict[str, Any] = {
        **{k: spec[k] for k in ("benchmark", "system", "run", "scale")},
        "backend": "import",
        "seed": None,
        "command": None,
        "host": None,
        "started_utc": None,
        "wall_s": None,
        "source": str(source),
        "source_sha256": None,
        "submission": {},
        "rcp_scaling_factor": 1.0,
        "olympic_drop": int((spec.get("mlperf") or {}).get("olympic_drop", 1)),
        "mlperf": dict(spec.get("mlperf") or {}),
        "system_json": None,
        "config_fingerprint": spec["config_fingerprint"],
        "comparability": spec["comparability"],
        "import_problems": [f"the published log is not read: {why}"],
        "fingerprint": hashing.canonical_sha256({"config_fingerprint": spec["config_fingerprint"]}),
    }
    record = seals.add_seal(RunRecord.of(**meta), log_path)
    record.write(meta_path)
    return record


def _host_of(log: Path) -> str | None:
    """The node NVIDIA's run script names (first match) in ``log``, read in blocks of
    BLOCK_BYTES until it is found (a line cut by a block boundary is searched whole)."""
    host: str | None = None
    carry = b""
    in_long_line = False  # a line longer than 4 KiB is not the host line: skip it
    with log.open("rb") as fh:
        while host is None and (block := fh.read(BLOCK_BYTES)):
            if in_long_line:
                nl = block.find(b"\n")
                if nl < 0:
                    continue
                block, in_long_line = block[nl + 1 :], False
            buf = carry + block
            last = buf.rfind(b"\n")
            whole, carry = (buf[: last + 1], buf[last + 1 :]) if last >= 0 else (b"", buf)
            if len(carry) > 4096:
                carry, in_long_line = b"", True
            found = _HOST_RE.search(whole)
            if found:
                host = found.group(1).decode("utf-8", "replace")
    if host is None and carry:
        found = _HOST_RE.search(carry)
        host = found.group(1).decode("utf-8", "replace") if found else None
    return host


def _utc(seconds: float) -> str | None:
    """ISO time of an epoch time from a log, or None when it is not a date (year 1 to 9999)."""
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat()
    except (OverflowError, ValueError, OSError):
        return None


def _seed_of_result_line(parsed: ParsedLog) -> int | None:
    return _as_int(parsed.result_line.seed) if parsed.result_line is not None else None


def run_main(argv: Sequence[str]) -> int:
    """``python -m scripts import --source ...``: import one log (:func:`import_run`), and
    write its result.json when asked."""
    p = argparse.ArgumentParser(
        prog="python -m scripts import",
        description="Import one published MLPerf result log as a run of an import system "
        "(or: python -m scripts import overlay --help, batch --help).",
    )
    p.add_argument("--source", type=Path, required=True, help="the published result_N.txt")
    p.add_argument("--spec", required=True, help="the run's specification as JSON")
    p.add_argument("--mlperf-json", default="{}", help="the benchmark's mlperf section as JSON")
    p.add_argument("--log", type=Path, required=True, help="the run's mlperf.log to write")
    p.add_argument("--meta", type=Path, required=True, help="the run's run.json to write")
    add_result_arguments(p)
    args = p.parse_args(argv)
    spec = {**json.loads(args.spec), "mlperf": json.loads(args.mlperf_json)}
    try:
        meta = import_run(args.source, spec, args.log, args.meta)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    platform = meta.submission.get("platform", "?")
    print(f"run {spec['run']}: imported {args.source} ({platform})")
    write_result_if_asked(args, args.log, args.meta)
    return 0
