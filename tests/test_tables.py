"""result.json, runs.csv and summary.csv: the MLPerf score per system, mixed runs refused."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from scripts.analysis import run_columns, summary_columns, summary_table, tables
from scripts.core.run_records import RunRecord
from scripts.run.result_json import parse_run

LOG = (
    "\n".join(
        [
            ':::MLLOG {"namespace": "", "time_ms": 1000, "event_type": "POINT_IN_TIME", '
            '"key": "seed", "value": 42, "metadata": {}}',
            ':::MLLOG {"namespace": "", "time_ms": 2000, "event_type": "INTERVAL_START", '
            '"key": "run_start", "value": null, "metadata": {}}',
            ':::MLLOG {"namespace": "", "time_ms": 9000, "event_type": "POINT_IN_TIME", '
            '"key": "eval_accuracy", "value": 91.5, "metadata": {"epoch_num": 3}}',
            ':::MLLOG {"namespace": "", "time_ms": 12500, "event_type": "INTERVAL_END", '
            '"key": "run_stop", "value": null, "metadata": {"status": "success"}}',
        ]
    )
    + "\n"
)
META = RunRecord.of(
    benchmark="gnmt",
    system="local",
    run=4,
    seed=42,
    scale="toy",
    host="h",
    started_utc="2026-01-01T00:00:00+00:00",
    wall_s=12.0,
    fingerprint="fp",
    config_fingerprint="cfp",
)
QUALITY = {"metric": "bleu", "target": 90.0, "direction": "higher"}


def test_parse_run_takes_time_from_run_start_and_run_stop(tmp_path: Path) -> None:
    log = tmp_path / "mlperf.log"
    log.write_text(LOG)
    r = parse_run(log, META, QUALITY)
    assert r.time_to_train_s == 10.5 and r.converged is True
    assert r.seed == 42 and r.run == 4 and r.final_quality == 91.5
    assert r.fingerprint == "fp" and r.problems == []
    json.dumps(r.to_json())  # serialisable


def test_a_log_seed_that_differs_from_the_configured_one_is_reported(tmp_path: Path) -> None:
    log = tmp_path / "mlperf.log"
    log.write_text(LOG)
    r = parse_run(log, META.updated(seed=7), QUALITY)
    assert any("differs" in p for p in r.problems or [])


def rows(times: list[float | None], converged: list[bool], fp: str = "fp") -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "benchmark": "gnmt",
                "system": "s",
                "run": i + 1,
                "time_to_train_s": t,
                "converged": c,
                "scale": "toy",
                "fingerprint": fp,
            }
            for i, (t, c) in enumerate(zip(times, converged, strict=True))
        ]
    )


def test_summary_row_has_the_olympic_score_and_converged_run_statistics() -> None:
    row = summary_table.summarize_system(rows([10.0, 12.0, 11.0, 30.0, 9.0], [True] * 5))
    assert row["score_s"] == pytest.approx(11.0)  # drop 9 and 30, mean of 10, 11, 12
    assert row["dropped_fastest_run"] == 5 and row["dropped_slowest_run"] == 4
    assert row["n_runs"] == 5 and row["valid"] is True
    assert row["mean_s"] == pytest.approx(14.4) and row["min_s"] == 9.0


def test_two_nonconverged_runs_make_the_result_invalid_naming_run_numbers() -> None:
    row = summary_table.summarize_system(rows([10.0, 20.0, 11.0, 12.0], [True, False, True, False]))
    assert row["valid"] is False and row["score_s"] is None
    assert "runs 2, 4" in row["reason"]
    assert row["n_converged"] == 2 and row["mean_s"] == pytest.approx(10.5)


def test_runs_of_one_system_under_different_fingerprints_are_refused() -> None:
    frame = pd.concat([rows([10.0, 11.0], [True, True]), rows([12.0], [True], fp="other")])
    with pytest.raises(summary_table.AggregationError, match="cannot be combined"):
        summary_table.summarize_system(frame)


def test_collect_and_summarize_cli_round_trip(tmp_path: Path) -> None:
    files = []
    for run, t in enumerate([10.0, 11.0, 12.0], start=1):
        f = tmp_path / f"r{run}.json"
        f.write_text(
            json.dumps(
                {
                    "benchmark": "gnmt",
                    "system": "local",
                    "run": run,
                    "seed": run,
                    "time_to_train_s": t,
                    "converged": True,
                    "scale": "toy",
                    "fingerprint": "fp",
                }
            )
        )
        files.append(str(f))
    runs_csv, summary_csv = tmp_path / "runs.csv", tmp_path / "summary.csv"
    assert tables.main(["collect", "--output", str(runs_csv), *files]) == 0
    assert list(pd.read_csv(runs_csv).columns) == run_columns.RUN_COLUMNS
    assert tables.main(["summarize", "--runs", str(runs_csv), "--output", str(summary_csv)]) == 0
    summary = pd.read_csv(summary_csv)
    assert list(summary.columns) == summary_columns.SUMMARY.names
    assert summary.loc[0, "score_s"] == pytest.approx(11.0)
