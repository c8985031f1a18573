"""runs.csv and evals.csv, made from the runs' result.json files.

- :func:`collect`: every ``result.json`` of a benchmark -> runs.csv (one row per run), with
  what each run's ``run.json`` says about scoring and the published system
  (:func:`run_provenance`), how many other runs shared its host while it ran
  (:func:`overlapping_runs`) and, for the runs made here of an MLPerf benchmark,
  mlperf-logging's RCP checker on their logs (:func:`own_rcp`);
- :func:`eval_rows`: one run's evaluations -> rows of evals.csv (the convergence curves).

The columns are :mod:`scripts.analysis.run_columns`'; the command lines are
:mod:`scripts.analysis.tables`'.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from scripts.analysis.run_columns import LOG_PROBLEMS_SEP, RUN_COLUMNS, log_problems_cell
from scripts.analysis.summary_columns import J_PER_KWH
from scripts.core.run_records import ResultRecord, RunRecord
from scripts.mlperf import compliance
from scripts.run.published.folder import SYSTEM_COLUMNS
from scripts.run.result_json import compliance_of


def _interval(result: ResultRecord) -> tuple[float, float] | None:
    """(start, end) in epoch seconds of a run's (last) attempt, from the runner's record."""
    start, wall = result.started_utc, result.runner_wall_s
    if not start or wall is None:
        return None
    t0 = dt.datetime.fromisoformat(start).timestamp()
    return t0, t0 + float(wall)


def overlapping_runs(results: Sequence[ResultRecord]) -> list[int]:
    """For each run, how many other runs were executing at the same time on a host it used
    (concurrent runs on one machine disturb each other's times; runs on different nodes of a
    cluster do not count)."""
    spans = [_interval(r) for r in results]
    hosts = [set(r.hosts or [r.host]) for r in results]
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


def run_provenance(result_file: Path) -> dict[str, Any]:
    """What the run.json beside a result.json says about scoring and the published system:
    ``published`` (an imported run), ``rcp_scaling_factor`` (1.0 without one: a run made
    here), ``olympic_drop`` (1) and the
    system columns of its ``system_json`` (None each)."""
    meta_path = Path(result_file).with_name("run.json")
    meta = RunRecord.read(meta_path) if meta_path.is_file() else RunRecord.from_json({})
    system = meta.system_json or {}
    return {
        # a published run: its folder's factor (1.0 without scaling.json) is in run.json
        "published": meta.has("rcp_scaling_factor"),
        "rcp_scaling_factor": float(meta.rcp_scaling_factor),
        "olympic_drop": int(meta.olympic_drop),
        **{c: system.get(c) for c in SYSTEM_COLUMNS},
    }


def own_rcp(
    results: Sequence[ResultRecord], provenance: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Per system whose runs were made here (no published factor in run.json) and whose
    benchmark is MLPerf's (result.json's compliance_ruleset): mlperf-logging's RCP checker on
    its runs' logs (:func:`scripts.mlperf.compliance.rcp_verdict`): pass, scaled by a factor,
    fail."""
    logs: dict[str, list[str]] = {}
    rulesets: dict[str, str] = {}
    for r, p in zip(results, provenance, strict=True):
        if p["published"] or not r.compliance_ruleset or not r.log:
            continue
        logs.setdefault(r.system, []).append(str(r.log))
        rulesets[r.system] = str(r.compliance_ruleset)
    return {s: compliance.rcp_verdict(logs[s], ruleset=rulesets[s]) for s in sorted(logs)}


def _rcp_cells(system: str, published: bool, verdicts: Mapping[str, Any]) -> dict[str, Any]:
    if published:
        return {"rcp": "published", "rcp_detail": "the folder's scaling.json (1.0 without one)"}
    verdict = verdicts.get(system)
    if verdict is None:
        return {"rcp": compliance.NOT_APPLICABLE, "rcp_detail": "not an MLPerf benchmark"}
    cells = {"rcp": verdict.status, "rcp_detail": verdict.detail}
    if verdict.status == "scaled" and verdict.factor is not None:
        cells["rcp_scaling_factor"] = float(verdict.factor)
    return cells


def collect(result_files: Sequence[Path]) -> pd.DataFrame:
    """runs.csv: one row per result.json (with :func:`run_provenance` of its run.json, and
    :func:`own_rcp` for the runs made here of an MLPerf benchmark)."""
    results = [ResultRecord.read(Path(f)) for f in result_files]  # a corrupt one is named
    provenance = [run_provenance(Path(f)) for f in result_files]
    verdicts = own_rcp(results, provenance)
    rows = []
    for r, p, n in zip(results, provenance, overlapping_runs(results), strict=True):
        row = {
            **r.to_json(),  # every key of the file, as the columns name them
            "gpu_devices": ",".join(r.gpu_devices or []),
            "overlapping_runs": n,
            "log_problems": log_problems_cell(r),
            "synthetic": bool(r.synthetic),  # False where result.json has no such key
            "power_problems": LOG_PROBLEMS_SEP.join(map(str, r.power_problems or [])),
            "energy_kwh": r.energy_j / J_PER_KWH if r.energy_j is not None else None,
            **dict(zip(("compliance", "compliance_detail"), compliance_of(r), strict=True)),
            **{k: v for k, v in p.items() if k != "published"},
        }
        row.update(_rcp_cells(r.system, p["published"], verdicts))
        rows.append(row)
    frame = pd.DataFrame(rows, columns=RUN_COLUMNS)
    return frame.sort_values(["system", "run"], kind="stable").reset_index(drop=True)


def eval_rows(result: ResultRecord) -> list[dict[str, Any]]:
    """One row per evaluation of one run (from its result.json's eval_history)."""
    return [
        {
            "benchmark": result.benchmark,
            "system": result.system,
            "run": result.run,
            "epoch": epoch,
            "quality": quality,
            "time_s": since,
            "converged": result.converged,
        }
        for epoch, quality, since in result.eval_history or []
    ]
