"""One run's result.json from its mlperf.log and the runner's run.json.

Kept apart from :mod:`scripts.tables` (pandas, scipy) because every training job imports it:
the runner writes result.json as soon as a run ends, so a run is one job, not two.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scripts import formats, hashing, seals
from scripts.mlperf_log import parse_file, run_outcome


def parse_run(
    log: Path,
    meta: Mapping[str, Any],
    quality: Mapping[str, Any],
    time_to_train: str = "run_stop",
) -> dict[str, Any]:
    """The result of one run: its log's outcome plus the runner's metadata.

    ``quality`` is the benchmark's quality section (target, direction, and optionally
    value_key and also_targets); ``time_to_train`` its ``log.time_to_train``."""
    parsed = parse_file(log)
    outcome = run_outcome(
        parsed,
        float(quality["target"]),
        quality.get("direction", "higher"),
        value_key=quality.get("value_key"),
        also_targets=quality.get("also_targets"),
        time_source=time_to_train,
    )
    out = outcome.to_dict()
    # the log's submission_benchmark (e.g. gnmt) never replaces the workflow's benchmark name
    out["submission_benchmark"] = out.pop("benchmark")
    problems = list(out.pop("problems"))
    if outcome.seed is not None and outcome.seed != meta.get("seed"):
        problems.append(f"log seed {outcome.seed} differs from the configured {meta.get('seed')}")
    return {
        "benchmark": meta["benchmark"],
        "system": meta["system"],
        "run": meta["run"],
        "seed": outcome.seed if outcome.seed is not None else meta.get("seed"),
        "scale": meta.get("scale"),
        "quality_metric": quality.get("metric"),
        **out,
        "started_utc": meta.get("started_utc"),
        "runner_wall_s": meta.get("wall_s"),
        "host": meta.get("host"),
        # where it ran: the nodes, its GPUs (and who assigned them), its Slurm job
        "hosts": meta.get("hosts") or [meta.get("host")],
        "nodes": meta.get("nodes", 1),
        "gpu_devices": meta.get("gpu_devices", []),
        "gpu_assignment": meta.get("gpu_assignment"),
        "slurm_job_id": meta.get("slurm_job_id"),
        "slurm_job_nodelist": meta.get("slurm_job_nodelist"),
        "log": str(log),
        "malformed_lines": parsed.malformed_lines,
        "problems": problems,
        "fingerprint": meta.get("fingerprint"),
        "config_fingerprint": meta.get("config_fingerprint"),
    }


def write_result(
    log: Path,
    meta_path: Path,
    quality: Mapping[str, Any],
    time_to_train: str,
    output: Path,
) -> dict[str, Any]:
    """Parse a finished run and write its result.json (atomically), with the sha256 of the log
    it was parsed from (scripts/seals.py)."""
    meta = formats.read_json(meta_path, "run.json")
    result = formats.stamped("result.json", parse_run(log, meta, quality, time_to_train))
    result[seals.RESULT_KEY] = seals.parsed_from(log, meta)
    hashing.write_json(output, result)
    return result


def add_result_arguments(parser: argparse.ArgumentParser) -> None:
    """--result, --quality-json and --time-to-train: what a job needs to write result.json."""
    parser.add_argument("--result", type=Path, help="the run's result.json to write")
    parser.add_argument("--quality-json", help="the benchmark's quality section as JSON")
    parser.add_argument(
        "--time-to-train", default="run_stop", help="the benchmark's log.time_to_train"
    )


def write_result_if_asked(args: argparse.Namespace, log: Path, meta: Path) -> None:
    if args.result is None:
        return
    if args.quality_json is None:
        raise SystemExit("--result needs --quality-json")
    result = write_result(log, meta, json.loads(args.quality_json), args.time_to_train, args.result)
    state = "converged" if result["converged"] else "did NOT converge"
    print(f"run {result['run']}: {state}, time to train {result['time_to_train_s']} s")
