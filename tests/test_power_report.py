"""Energy and GPU health in the tables and the report (issue 25): the energy to train beside the
time (summary.csv's energy score, the report's verdict lines, runs table and leaderboard, with
what measured it), and runs with a throttled GPU named as busy hosts are, with a warning when a
system's runs differ in throttling."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from scripts.analysis import leaderboard, report, report_cells, report_findings
from scripts.core.run_records import ResultRecord
from scripts.run import gpu_telemetry
from tests.test_report import GOLDEN, golden_results

WATTS = 300.0  # the power of b-faster's runs


def energy_results(tmp_path: Path) -> Path:
    """The golden runs, b-faster's measured by a power command at 300 W (runs.csv energy_j,
    energy_kwh, power_source), with their tables and leaderboard."""
    runs = pd.read_csv(GOLDEN / "runs.csv")
    mine = runs["system"] == "b-faster"
    runs["energy_j"] = [
        t * WATTS if m else None for t, m in zip(runs["time_to_train_s"], mine, strict=True)
    ]
    runs["energy_kwh"] = runs["energy_j"] / 3.6e6
    runs["power_source"] = ["command" if m else None for m in mine]
    golden = tmp_path / "golden"
    golden.mkdir()
    runs.to_csv(golden / "runs.csv", index=False)
    return golden


def test_the_energy_to_train_stands_beside_the_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tests.test_report as test_report

    monkeypatch.setattr(test_report, "GOLDEN", energy_results(tmp_path))
    res = golden_results(tmp_path, with_leaderboard=True)
    summary = pd.read_csv(res / "summary.csv").set_index("system")
    kwh = summary.loc["b-faster", "energy_kwh"]
    # the olympic energy: 300 W times the score (the mean of the runs the score averages)
    assert kwh == pytest.approx(WATTS * summary.loc["b-faster", "score_s"] / 3.6e6, rel=1e-9)
    assert pd.isna(summary.loc["a-baseline", "energy_kwh"])
    board = pd.read_csv(res / "leaderboard.csv").set_index("system")
    assert board.loc["b-faster", "power_source"] == "command"
    assert pd.isna(board.loc["a-baseline", "power_source"])

    page = report.render("golden", res, {"benchmark": {}, "systems": {}}, generated="now")
    verdict = page[page.index('id="verdict"') : page.index("<h2>Warnings</h2>")]
    assert (
        f"b-faster: energy to train {kwh:.4g} kWh ({kwh * 3600:.4g} kJ), the MLPerf energy "
        "score of the runs its time score averages; measured by the system&#x27;s power "
        "command (power/node_0.txt in each run&#x27;s folder)." in verdict
    )
    assert "a-baseline: energy" not in verdict
    runs_table = page[page.index("<h2>Runs</h2>") : page.index("<h2>Provenance</h2>")]
    assert "<th>energy (kJ)</th>" in runs_table and "<th>GPU throttled (s)</th>" in runs_table
    header = runs_table[: runs_table.index("</tr>")]
    assert header.index("time to train (s)") < header.index("energy (kJ)")  # beside the time
    runs = pd.read_csv(res / "runs.csv")
    first = runs[runs["system"] == "b-faster"].iloc[0]
    assert f"<td>{report_cells.fmt_kj(first['energy_j'])}</td>" in runs_table
    section = page[page.index("<h2>Leaderboard</h2>") : page.index("<h2>Plots</h2>")]
    assert '<th class="text">energy measured by</th>' in section
    assert '<td class="text">command</td>' in section


def test_nvml_energy_says_it_is_the_gpus_only() -> None:
    summary = pd.DataFrame([{"system": "gpu", "energy_kwh": 0.5}])
    runs = pd.DataFrame([{"system": "gpu", "power_source": "nvml"}])
    (line,) = report_findings.energy_lines(summary, runs)
    assert line.endswith("measured by NVML: the GPUs only, not MLPerf's wall-plug node power.")
    row = {"rank": 1, "system": "gpu", "score_s": 100.0, "score_ci95_low_s": 90.0,
           "score_ci95_high_s": 110.0, "group": "distinct", "energy_kwh": 0.5,
           "power_source": "nvml"}  # fmt: skip
    assert "0.5 kWh of the GPUs only" in leaderboard.describe_row(row)


def result(run: int, throttled_s: float | None, wall_s: float = 100.0) -> ResultRecord:
    return ResultRecord.of(
        benchmark="b", system="gpu", run=run, runner_wall_s=wall_s, gpu_throttled_s=throttled_s
    )


def test_throttled_runs_are_named_and_a_system_whose_runs_differ_is_warned() -> None:
    quiet = [result(1, 0.0), result(2, 1.0), result(3, None)]
    assert report_findings.throttle_warnings(quiet) == []
    runs = [result(1, 0.0), result(2, 41.0), result(3, 5.0)]
    named, differ = report_findings.throttle_warnings(runs)
    assert named.startswith("gpu: run(s) 2 (41% of the run), 3 (5% of the run) ran with a GPU ")
    assert "threshold 5% of the run; gpu_telemetry.json in the run's folder" in named
    assert "HW slowdown, SW or HW thermal, power brake; a GPU at its SW power cap" in named
    assert differ.startswith("gpu: its runs differ in GPU throttling (from 0% to 41% of the ")
    # every run throttled alike (a GPU too hot in each): named, but no spread
    alike = [result(1, 50.0), result(2, 52.0)]
    (only,) = report_findings.throttle_warnings(alike)
    assert "run(s) 1 (50% of the run), 2 (52% of the run)" in only
    assert gpu_telemetry.THROTTLED_SHARE == 0.05 and gpu_telemetry.THROTTLE_SPREAD == 0.10


def test_the_warnings_of_the_page_include_the_throttled_runs() -> None:
    summary = pd.DataFrame(columns=["system", "valid", "n_runs", "n_converged"])
    comparison = pd.DataFrame(columns=["system", "reference", "significant", "mdd_rel"])
    found = report_findings.warnings(summary, comparison, {}, [result(1, 0.0), result(2, 30.0)])
    assert any("gpu: run(s) 2 (30% of the run) ran with a GPU throttled" in w for w in found)
