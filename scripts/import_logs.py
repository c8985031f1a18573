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

from scripts import seals
from scripts.config import fingerprint
from scripts.mlperf_log import ParsedLog, _as_int, parse_file
from scripts.run_result import add_result_arguments, write_result_if_asked

RESULT_FILE_RE = re.compile(r"^result_(\d+)\.txt$")
# NVIDIA's run scripts print the node they ran on
_HOST_RE = re.compile(r"^(?:Gathering sys log on|Clearing cache on|Launching on node) (\S+)", re.M)
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
    if isinstance(value, str) and value[:1] in "{[":
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
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
    text = source.read_text(errors="replace")
    host = _HOST_RE.search(text)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    tmp_log = log_path.with_name(log_path.name + ".tmp")
    shutil.copyfile(source, tmp_log)
    os.replace(tmp_log, log_path)
    meta = {
        "benchmark": spec["benchmark"],
        "system": spec["system"],
        "run": spec["run"],
        "backend": "import",
        "seed": _as_int(seed.value) if seed is not None else _seed_of_result_line(parsed),
        "scale": spec["scale"],
        "command": None,
        "host": host.group(1) if host else None,
        "started_utc": (
            dt.datetime.fromtimestamp(start.time_s, dt.UTC).isoformat() if start else None
        ),
        "wall_s": None,
        "source": str(source.resolve()),
        "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "submission": info,
        "config_fingerprint": spec["config_fingerprint"],
        "comparability": spec["comparability"],
    }
    meta["fingerprint"] = fingerprint({"config_fingerprint": spec["config_fingerprint"]})
    seals.add_seal(meta, log_path)  # the imported copy is sealed like a run made here
    tmp = meta_path.with_name(meta_path.name + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, meta_path)
    return meta


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
