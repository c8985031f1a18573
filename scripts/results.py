"""From raw run logs to the campaign's tables: result.json per run, runs.csv, summary.csv.

- ``parse``: one run's ``mlperf.log`` (+ the runner's ``run.json``) -> ``result.json``.
- ``collect``: every ``result.json`` of a benchmark -> ``runs.csv`` (one row per run).
- ``summarize``: ``runs.csv`` -> ``summary.csv`` (one row per system): the MLPerf score
  (olympic mean, :func:`scripts.scoring.olympic_score`) and statistics of the converged runs'
  times to train (:func:`scripts.scoring.describe`).

Aggregation refuses to mix runs of one system whose fingerprints differ (different dataset,
target, command, hyper-parameters or environment): such runs are not comparable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from scripts.mlperf_log import parse_file, run_outcome
from scripts.scoring import describe, olympic_score

RUN_COLUMNS = [
    "benchmark",
    "system",
    "run",
    "seed",
    "started_utc",
    "time_to_train_s",
    "converged",
    "status",
    "epochs",
    "epochs_to_converge",
    "time_per_epoch_s",
    "final_quality",
    "quality_target",
    "result_line_wall_s",
    "runner_wall_s",
    "host",
    "gpu_devices",
    "slurm_job_id",
    "overlapping_runs",
    "scale",
    "fingerprint",
]
SUMMARY_COLUMNS = [
    "benchmark",
    "system",
    "n_runs",
    "n_converged",
    "valid",
    "reason",
    "score_s",
    "mean_s",
    "std_s",
    "cv",
    "min_s",
    "median_s",
    "max_s",
    "ci95_low_s",
    "ci95_high_s",
    "dropped_fastest_run",
    "dropped_slowest_run",
    "n_overlapped",
    "scale",
    "fingerprint",
]


class AggregationError(RuntimeError):
    pass


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def parse_run(log: Path, meta: Mapping[str, Any], quality: Mapping[str, Any]) -> dict[str, Any]:
    """The result of one run: its log's outcome plus the runner's metadata."""
    parsed = parse_file(log)
    outcome = run_outcome(parsed, float(quality["target"]), quality.get("direction", "higher"))
    out = outcome.to_dict()
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


def _interval(result: Mapping[str, Any]) -> tuple[float, float] | None:
    """(start, end) in epoch seconds of a run's (last) attempt, from the runner's record."""
    start, wall = result.get("started_utc"), result.get("runner_wall_s")
    if not start or wall is None:
        return None
    t0 = dt.datetime.fromisoformat(start).timestamp()
    return t0, t0 + float(wall)


def overlapping_runs(results: Sequence[Mapping[str, Any]]) -> list[int]:
    """For each run, how many other runs were executing at the same time on a host it used
    (concurrent runs on one machine disturb each other's times; runs on different nodes of a
    cluster do not count)."""
    spans = [_interval(r) for r in results]
    hosts = [set(r.get("hosts") or [r.get("host")]) for r in results]
    counts = []
    for i, span in enumerate(spans):
        n = 0
        for j, other in enumerate(spans):
            if i == j or span is None or other is None or not hosts[i] & hosts[j]:
                continue
            if span[0] < other[1] and other[0] < span[1]:
                n += 1
        counts.append(n)
    return counts


def collect(result_files: Sequence[Path]) -> pd.DataFrame:
    results = [json.loads(Path(f).read_text()) for f in result_files]
    rows = [
        {**r, "gpu_devices": ",".join(r.get("gpu_devices") or []), "overlapping_runs": n}
        for r, n in zip(results, overlapping_runs(results), strict=True)
    ]
    frame = pd.DataFrame(rows, columns=RUN_COLUMNS)
    return frame.sort_values(["system", "run"], kind="stable").reset_index(drop=True)


def _nan_to_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def summarize_system(runs: pd.DataFrame, max_nonconverged: int = 1) -> dict[str, Any]:
    """One summary row from the runs of one benchmark on one system."""
    runs = runs.sort_values("run", kind="stable")
    fingerprints = sorted(set(runs["fingerprint"].dropna()))
    if len(fingerprints) > 1:
        groups = {
            fp[:12]: sorted(runs.loc[runs["fingerprint"] == fp, "run"].tolist())
            for fp in fingerprints
        }
        raise AggregationError(
            f"{runs['benchmark'].iloc[0]}/{runs['system'].iloc[0]}: runs were made under "
            f"different configurations and cannot be combined (runs by fingerprint: {groups}). "
            "Archive or delete the runs of the old configuration, then run again."
        )
    times = [None if pd.isna(t) else float(t) for t in runs["time_to_train_s"]]
    converged = [bool(c) for c in runs["converged"]]
    run_numbers = runs["run"].tolist()
    score = olympic_score(times, converged, max_nonconverged=max_nonconverged, labels=run_numbers)
    ok_times = [t for t, c in zip(times, converged, strict=True) if c and t is not None]
    stats = describe(ok_times) if ok_times else None
    row: dict[str, Any] = {
        "benchmark": runs["benchmark"].iloc[0],
        "system": runs["system"].iloc[0],
        "n_runs": score.n_runs,
        "n_converged": score.n_converged,
        "valid": score.valid,
        "reason": score.reason,
        "score_s": score.score_s,
        "dropped_fastest_run": (
            run_numbers[score.dropped_fastest] if score.dropped_fastest is not None else None
        ),
        "dropped_slowest_run": (
            run_numbers[score.dropped_slowest] if score.dropped_slowest is not None else None
        ),
        "scale": runs["scale"].iloc[0],
        "fingerprint": fingerprints[0] if fingerprints else None,
        # runs of this system that shared a host with another run while they ran
        "n_overlapped": (
            int((runs["overlapping_runs"].fillna(0) > 0).sum())
            if "overlapping_runs" in runs
            else None
        ),
    }
    for col in ("mean_s", "std_s", "cv", "min_s", "median_s", "max_s", "ci95_low_s", "ci95_high_s"):
        row[col] = _nan_to_none(getattr(stats, col)) if stats else None
    return row


def summarize(runs: pd.DataFrame, max_nonconverged: int = 1) -> pd.DataFrame:
    rows = [summarize_system(g, max_nonconverged) for _, g in runs.groupby("system", sort=True)]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def summarize_partial(
    runs: pd.DataFrame, expected: Mapping[str, int], max_nonconverged: int = 1
) -> pd.DataFrame:
    """Like :func:`summarize` over the runs finished so far, marked ``partial`` per system.

    ``expected`` maps each system of the campaign to its number of runs; a system with no
    finished run yet gets a row with n_runs 0.
    """
    rows = []
    for system, n_expected in sorted(expected.items()):
        mine = runs[runs["system"] == system] if len(runs) else runs
        if len(mine):
            row = summarize_system(mine, max_nonconverged)
        else:
            row = {c: None for c in SUMMARY_COLUMNS} | {
                "system": system,
                "n_runs": 0,
                "n_converged": 0,
                "valid": False,
                "reason": "no finished run yet",
            }
        row["n_expected"] = n_expected
        row["partial"] = row["n_runs"] < n_expected
        if row["partial"]:
            note = f"partial: {row['n_runs']} of {n_expected} runs finished"
            row["reason"] = f"{note}; {row['reason']}" if row.get("reason") else note
            row["valid"] = False
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["partial", "n_expected", *SUMMARY_COLUMNS])
    if len(runs):
        frame["benchmark"] = runs["benchmark"].iloc[0]
    return frame


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Parse runs and aggregate them into tables.")
    sub = p.add_subparsers(dest="cmd", required=True)
    pa = sub.add_parser("parse", help="mlperf.log + run.json -> result.json")
    pa.add_argument("--log", type=Path, required=True)
    pa.add_argument("--meta", type=Path, required=True)
    pa.add_argument("--quality-json", required=True, help="the benchmark's quality as JSON")
    pa.add_argument("--output", type=Path, required=True)
    co = sub.add_parser("collect", help="result.json files -> runs.csv")
    co.add_argument("--output", type=Path, required=True)
    co.add_argument("results", type=Path, nargs="+")
    su = sub.add_parser("summarize", help="runs.csv -> summary.csv")
    su.add_argument("--runs", type=Path, required=True)
    su.add_argument("--max-nonconverged", type=int, default=1)
    su.add_argument("--output", type=Path, required=True)
    pt = sub.add_parser("partial", help="finished result.json files -> summary.partial.csv")
    pt.add_argument("--expected-json", required=True, help='{"system": n_runs, ...}')
    pt.add_argument("--max-nonconverged", type=int, default=1)
    pt.add_argument("--output", type=Path, required=True)
    pt.add_argument("results", type=Path, nargs="*")
    args = p.parse_args(argv)
    if args.cmd == "partial":
        frame = collect(args.results) if args.results else pd.DataFrame(columns=RUN_COLUMNS)
        table = summarize_partial(frame, json.loads(args.expected_json), args.max_nonconverged)
        write_atomic(args.output, table.to_csv(index=False, float_format="%.6g"))
        print(
            table.to_string(
                index=False,
                columns=["system", "partial", "n_runs", "n_expected", "score_s", "mean_s"],
            )
        )
        return 0
    if args.cmd == "parse":
        meta = json.loads(args.meta.read_text())
        result = parse_run(args.log, meta, json.loads(args.quality_json))
        write_atomic(args.output, json.dumps(result, indent=2) + "\n")
        state = "converged" if result["converged"] else "did NOT converge"
        print(f"run {result['run']}: {state}, time to train {result['time_to_train_s']} s")
    elif args.cmd == "collect":
        write_atomic(args.output, collect(args.results).to_csv(index=False))
    else:
        try:
            table = summarize(pd.read_csv(args.runs), args.max_nonconverged)
        except AggregationError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        write_atomic(args.output, table.to_csv(index=False, float_format="%.6g"))
        print(
            table.to_string(
                index=False,
                columns=["system", "n_runs", "n_converged", "valid", "score_s", "mean_s", "cv"],
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
