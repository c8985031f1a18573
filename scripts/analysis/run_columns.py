"""The columns of runs.csv (one row per run) and evals.csv (one row per evaluation), and how
runs.csv's ``log_problems`` cell is written and read.

runs.csv is made by :func:`scripts.analysis.runs_table.collect`, evals.csv by
:func:`scripts.analysis.runs_table.eval_rows`; summary.csv's and comparison.csv's columns are
registries (:mod:`scripts.analysis.summary_columns`, :mod:`scripts.analysis.comparison_columns`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from scripts.core.run_records import ResultRecord
from scripts.run.published.folder import SYSTEM_COLUMNS

RUN_COLUMNS = [
    "benchmark",
    "system",
    "run",
    "seed",
    "started_utc",
    "time_to_train_s",
    "converged",
    "status",
    "log_problems",
    # the round's compliance checker (result.json; "not applicable" for a non-MLPerf benchmark)
    "compliance",
    "compliance_detail",
    "epochs",
    "epochs_to_converge",
    "time_per_epoch_s",
    "final_quality",
    "quality_target",
    "result_line_wall_s",
    "runner_wall_s",
    "host",
    # what the run measured under: its dataset's page cache just before it started, and the
    # others' CPU (cores) and the load average while it trained (result.json; empty before)
    "cache",
    "dataset_resident",
    "host_busy",
    "load_1m",
    "gpu_devices",
    "slurm_job_id",
    "overlapping_runs",
    "scale",
    # a smoke run on the implementation's generated data (USE_SYNTHETIC_DATA=1): never scored
    # (result.json's synthetic; False for a result.json written before it)
    "synthetic",
    "fingerprint",
    # how the result is scored: a published folder's scaling.json factor (run.json), or for
    # runs made here of an MLPerf benchmark the factor of mlperf-logging's RCP checker on them
    "rcp_scaling_factor",
    "rcp",
    "rcp_detail",
    "olympic_drop",
    # the run's energy (result.json, scripts/mlperf/power.py: a published power result's, or
    # one measured here by the system's power source, scripts/mlperf/own_power.py; empty
    # without one) in joules and kWh, the power rules it breaks and the gaps of its source
    # (named, never a log problem: convergence is unchanged), what measured it (published,
    # command, nvml: the GPUs only) and, with nvml, the seconds a GPU was throttled
    "energy_j",
    "energy_kwh",
    "power_problems",
    "power_source",
    "gpu_throttled_s",
    # the published systems/<system>.json (run.json's system_json; empty for runs made here)
    *SYSTEM_COLUMNS,
]
# the convergence curves of the report
EVAL_COLUMNS = ["benchmark", "system", "run", "epoch", "quality", "time_s", "converged"]


LOG_PROBLEMS_SEP = "; "


def log_problems_cell(result: ResultRecord) -> str:
    """runs.csv's log_problems of one result: "" when the log is valid, else every problem,
    joined by "; " (a result.json written before log_problems existed has none)."""
    return LOG_PROBLEMS_SEP.join(str(p) for p in result.log_problems or [])


def names_log_problems(cell: Any) -> bool:
    """Whether a log_problems cell of runs.csv names a problem (an empty cell reads back as
    NaN)."""
    return isinstance(cell, str) and cell.strip() != ""


# summary.csv's reason (and the leaderboard's) for a system with a synthetic run
SYNTHETIC_REASON = "synthetic data (USE_SYNTHETIC_DATA=1): a smoke run, never a score"


def synthetic_runs(runs: pd.DataFrame) -> list[bool]:
    """Per row of runs.csv, whether it is a synthetic run: its ``synthetic`` cell is true (as
    read back from the CSV, True or "True"); an empty cell or a table without the column (made
    before it) is not."""
    if "synthetic" not in runs:
        return [False] * len(runs)
    return [x is True or str(x).strip().lower() == "true" for x in runs["synthetic"]]


def has_log_problems(runs: pd.DataFrame) -> pd.Series:
    """Per row of runs.csv, whether its log has problems."""
    if "log_problems" not in runs:
        return pd.Series(False, index=runs.index)
    return pd.Series([names_log_problems(x) for x in runs["log_problems"]], index=runs.index)
