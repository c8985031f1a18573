"""The workflow end to end, on temporary copies: file targets, reruns of exactly what is missing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from tests.conftest import fake_campaign, jobs_run, snakemake, snapshot

SUMMARY_COLUMNS = {
    "benchmark",
    "system",
    "n_runs",
    "n_converged",
    "valid",
    "score_s",
    "mean_s",
    "std_s",
    "cv",
    "min_s",
    "median_s",
    "max_s",
    "ci95_low_s",
    "ci95_high_s",
}


def test_fake_campaign_runs_every_stage_and_reruns_only_what_is_missing(
    workflow_copy: Path,
) -> None:
    wf = workflow_copy
    overlay = str(fake_campaign(wf, runs=3))
    first = snakemake(wf, "results/fake/summary.csv", "--cores", "1", "--configfile", overlay)
    assert first.returncode == 0, first.stderr[-3000:]
    jobs = jobs_run(first.stderr)
    assert sorted(j.split()[0] for j in jobs) == sorted(
        ["download_file", "verify_dataset", "unpack_dataset", "capture_environment"]
        + ["train_run"] * 3  # each trains and writes its result.json: one job per run
        + ["collect_runs", "summarize"]
    )
    for run in ("01", "02", "03"):
        result = json.loads((wf / f"results/fake/local/run_{run}/result.json").read_text())
        assert result["converged"] is True and result["time_to_train_s"] > 0
        assert (
            result["seed"]
            == json.loads((wf / f"results/fake/local/run_{run}/run.json").read_text())["seed"]
        )
    summary = pd.read_csv(wf / "results/fake/summary.csv")
    assert SUMMARY_COLUMNS <= set(summary.columns)
    assert summary.loc[0, "n_runs"] == 3 and bool(summary.loc[0, "valid"])
    runs = pd.read_csv(wf / "results/fake/runs.csv")
    assert len(runs) == 3 and runs["seed"].nunique() == 3

    again = snakemake(wf, "results/fake/summary.csv", "--cores", "1", "--configfile", overlay)
    assert again.returncode == 0
    assert "Nothing to be done" in again.stderr + again.stdout

    # a deleted result.json: that run's log is parsed again (no training), then the tables
    before = snapshot(wf)
    (wf / "results/fake/local/run_02/result.json").unlink()
    redo = snakemake(wf, "results/fake/summary.csv", "--cores", "1", "--configfile", overlay)
    assert redo.returncode == 0, redo.stderr[-3000:]
    assert "Re-parsing the logs of runs without result.json: results/fake/local/run_02" in (
        redo.stderr
    )
    assert sorted(jobs_run(redo.stderr)) == sorted(
        ["collect_runs benchmark=fake", "summarize benchmark=fake"]
    )
    after = snapshot(wf)
    for name, (digest, mtime) in before.items():
        if "run_" in name:  # every run file is back, byte-identical; others untouched
            assert after[name][0] == digest, name
            if "run_02/result.json" not in name:
                assert after[name][1] == mtime, name

    # a deleted mlperf.log: that one training run (and its parse) run again, nothing else
    before = snapshot(wf)
    (wf / "results/fake/local/run_03/mlperf.log").unlink()
    redo = snakemake(wf, "results/fake/summary.csv", "--cores", "1", "--configfile", overlay)
    assert redo.returncode == 0, redo.stderr[-3000:]
    assert sorted(jobs_run(redo.stderr)) == sorted(
        [
            "train_run benchmark=fake, system=local, run=03",
            "collect_runs benchmark=fake",
            "summarize benchmark=fake",
        ]
    )
    after = snapshot(wf)
    for name, (digest, mtime) in before.items():
        if "run_01" in name or "run_02" in name:
            assert after[name] == (digest, mtime), name


def test_a_nonconverged_run_is_a_result_and_is_dropped_as_slowest(workflow_copy: Path) -> None:
    wf = workflow_copy
    overlay = str(fake_campaign(wf, runs=4, faults={"no_converge": [2]}))
    proc = snakemake(wf, "results/fake/summary.csv", "--cores", "1", "--configfile", overlay)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((wf / "results/fake/local/run_02/result.json").read_text())
    assert result["converged"] is False and result["status"] == "aborted"
    summary = pd.read_csv(wf / "results/fake/summary.csv").iloc[0]
    assert bool(summary["valid"]) and summary["n_converged"] == 3
    assert summary["dropped_slowest_run"] == 2


def test_a_crashed_run_fails_keeps_its_log_and_leaves_the_others(workflow_copy: Path) -> None:
    wf = workflow_copy
    # run 2 prints a 100 kB line, then crashes
    overlay = str(fake_campaign(wf, runs=3, faults={"crash": [2], "long_line": [2]}))
    proc = snakemake(wf, "results/fake/summary.csv", "--cores", "1", "--configfile", overlay)
    assert proc.returncode != 0
    assert not (wf / "results/fake/local/run_02/mlperf.log").exists()
    assert (wf / "results/fake/local/run_01/result.json").exists()
    assert (wf / "results/fake/local/run_03/result.json").exists()  # keep-going
    kept = list((wf / "logs/failed/fake/local").glob("run_02.attempt1.*.log"))
    assert len(kept) == 1 and "exited with status 3" in kept[0].read_text()
    assert not (wf / "results/fake/summary.csv").exists()
    # the job's output (its log, shown on the console) starts with the reason and the kept
    # log's path, then a tail of that log with long lines cut
    first = (
        "error: run 2 of fake/local failed: trainer exited with status 3; its log is kept at "
        f"logs/failed/fake/local/{kept[0].name}"
    )
    job_log = (wf / "logs/train_run/fake/local/run_02.log").read_text().splitlines()
    assert job_log[0] == first
    block = re.search(
        r"^Logfile logs/train_run/fake/local/run_02\.log:\n=+\n(.*?)\n=+$", proc.stderr, re.M | re.S
    )
    assert block, proc.stderr[-3000:]
    shown = block.group(1).splitlines()  # what snakemake's show-failed-logs prints
    assert shown[0] == first and shown == job_log
    assert "  | fake trainer: crashing on purpose" in shown
    assert max(len(line) for line in shown) < 300  # the 100 kB line is cut
    assert any(line.startswith("  | ") and line.endswith("...") for line in shown)


def test_the_embedded_gnmt_campaign_of_three_runs(workflow_copy: Path) -> None:
    """The real embedded benchmark (download, verify, unpack, train, parse, summarize), 3 runs."""
    wf = workflow_copy
    (wf / "small.yaml").write_text("benchmarks:\n  gnmt:\n    runs: 3\n")
    proc = snakemake(
        wf, "results/gnmt/summary.csv", "--cores", "1", "--configfile", "small.yaml", timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = pd.read_csv(wf / "results/gnmt/summary.csv")
    assert SUMMARY_COLUMNS <= set(summary.columns)
    row = summary.iloc[0]
    assert row["system"] == "local" and row["n_runs"] == 3 and row["n_converged"] == 3
    assert bool(row["valid"]) and 0 < row["score_s"] < 120
    assert "not comparable to MLPerf" in row["scale"]
    log = (wf / "results/gnmt/local/run_01/mlperf.log").read_text()
    for key in (
        "submission_benchmark",
        "seed",
        "run_start",
        "epoch_start",
        "epoch_stop",
        "eval_accuracy",
        "run_stop",
    ):
        assert f'"key": "{key}"' in log, key
    env = json.loads((wf / "results/gnmt/local/environment.json").read_text())
    assert env["packages"]["torch"] and env["cpu_count"] >= 1 and env["digest"]
    manifest = json.loads((wf / "data/gnmt/manifest.json").read_text())
    assert manifest["files"][0]["name"] == "toy-ende-v1.tar.gz"
