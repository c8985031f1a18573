"""The ``import`` backend: runs of a system are existing MLPerf result logs.

A published MLPerf submission keeps each benchmark's runs as ``result_<N>.txt`` in one folder
per system and benchmark (``training_results_v0.6/NVIDIA/results/dgx1_ngc19.05_pytorch/gnmt/``).
An import system points ``import_dir`` at the system folder; run NN of a benchmark is the NN-th
``result_*.txt`` of ``<import_dir>/<mlperf_name>/`` in the order of N (``result_0.txt`` is run
01). Importing a run copies the log to the run's ``mlperf.log`` (so the results folder stays
complete when the source moves) and writes its ``run.json`` with where it came from: the source
path and sha256, and the submission's own description of the system (``submission_org``,
``submission_platform``, ``submission_entry``...). From there a run is parsed, collected and
scored exactly like a run made here.

A log that is not a valid MLPerf log of a finished run (:func:`scripts.mlperf_log.log_problems`:
random bytes, no run_start, run_stop before run_start ...) is still imported: it becomes a run
without a result (not converged, no time), named in runs.csv's ``log_problems``, as
mlperf-logging's result summarizer counts a log that fails the compliance check (dropped as the
slowest run; more than one makes the score invalid). The source is read in blocks, never whole.
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scripts import formats, hashing, seals
from scripts.mlperf_log import ParsedLog, _as_int, parse_file
from scripts.result_json import add_result_arguments, write_result_if_asked

RESULT_FILE_RE = re.compile(r"^result_(\d+)\.txt$")
# NVIDIA's run scripts print the node they ran on
_HOST_RE = re.compile(rb"^(?:Gathering sys log on|Clearing cache on|Launching on node) (\S+)", re.M)
BLOCK_BYTES = 4 << 20
LITERAL_MAX_CHARS = 64 << 10  # a longer submission_entry stays text
SUBMISSION_KEYS = ("org", "platform", "division", "status", "benchmark", "poc_name")


def result_files(folder: Path) -> list[Path]:
    """``result_<N>.txt`` files of a folder, ordered by N (an empty list for no folder)."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := RESULT_FILE_RE.match(p.name))]
    return [p for _, p in sorted(found)]


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


def import_run(source: Path, spec: dict[str, Any], log_path: Path, meta_path: Path) -> dict:
    """Copy one published log to ``log_path`` and write its ``run.json`` to ``meta_path``.

    ``spec`` holds benchmark, system, run, scale, mlperf_name, config_fingerprint and
    comparability (see rules/import.smk). A log whose ``submission_benchmark`` is not the
    benchmark's ``mlperf_name`` is refused (the folder is probably the wrong one)."""
    parsed = parse_file(source)
    info = submission(parsed)
    logged = str(info.get("benchmark", "")).lower()
    wanted = str(spec.get("mlperf_name", "")).lower()
    if logged and wanted and logged != wanted:
        raise ValueError(
            f"{source}: submission_benchmark is {info['benchmark']!r}, but benchmark "
            f"{spec['benchmark']!r} imports {spec['mlperf_name']!r}; check import_dir"
        )
    start = parsed.first("run_start")
    seed = parsed.first("seed")
    host, digest = _host_and_sha256(source)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_log = log_path.with_name(log_path.name + ".tmp")
    shutil.copyfile(source, tmp_log)
    os.replace(tmp_log, log_path)
    meta = {
        "format_version": formats.version("run.json"),
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
        "config_fingerprint": spec["config_fingerprint"],
        "comparability": spec["comparability"],
    }
    fingerprinted = {"config_fingerprint": spec["config_fingerprint"]}
    meta["fingerprint"] = hashing.canonical_sha256(fingerprinted)
    seals.add_seal(meta, log_path)  # the imported copy is sealed like a run made here
    hashing.write_json(meta_path, meta, sort_keys=True)
    return meta


def _host_and_sha256(source: Path) -> tuple[str | None, str]:
    """The node NVIDIA's run script names (first match) and the sha256 of ``source``, read in
    blocks of BLOCK_BYTES (a line cut by a block boundary is searched whole)."""
    sha = hashlib.sha256()
    host: str | None = None
    carry = b""
    in_long_line = False  # a line longer than 4 KiB is not the host line: skip it
    with source.open("rb") as fh:
        while block := fh.read(BLOCK_BYTES):
            sha.update(block)
            if host is not None:
                continue
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
    return host, sha.hexdigest()


def _utc(seconds: float) -> str | None:
    """ISO time of an epoch time from a log, or None when it is not a date (year 1 to 9999)."""
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat()
    except (OverflowError, ValueError, OSError):
        return None


def _seed_of_result_line(parsed: ParsedLog) -> int | None:
    return _as_int(parsed.result_line.seed) if parsed.result_line is not None else None


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scripts.import_logs",
        description="Import one published MLPerf result log as a run of an import system.",
    )
    p.add_argument("--source", type=Path, required=True, help="the published result_N.txt")
    p.add_argument("--spec", required=True, help="the run's specification as JSON")
    p.add_argument("--log", type=Path, required=True, help="the run's mlperf.log to write")
    p.add_argument("--meta", type=Path, required=True, help="the run's run.json to write")
    add_result_arguments(p)
    args = p.parse_args(argv)
    spec = json.loads(args.spec)
    try:
        meta = import_run(args.source, spec, args.log, args.meta)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    platform = meta["submission"].get("platform", "?")
    print(f"run {spec['run']}: imported {args.source} ({platform})")
    write_result_if_asked(args, args.log, args.meta)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
