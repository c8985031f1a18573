"""The M-of-N protocol (scripts.analysis.windows): every window of N consecutive runs scored,
the median window chosen; the default (no window) leaves summary.csv as it was."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from scripts.analysis import tables
from scripts.analysis.report_windows import window_section
from scripts.analysis.summary_table import AggregationError, summarize
from scripts.analysis.windows import median_position, parse_scores, window_scores
from scripts.core.window_setting import window_of, window_problems

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"

# 12 runs, run order 1..12
TIMES = [100.0, 104.0, 101.0, 103.0, 102.0, 105.0, 106.0, 99.0, 107.0, 108.0, 130.0, 90.0]


def runs_frame(times: list[float | None], converged: list[bool] | None = None) -> pd.DataFrame:
    n = len(times)
    return pd.DataFrame(
        {
            "benchmark": "b",
            "system": "s",
            "run": list(range(1, n + 1)),
            "time_to_train_s": times,
            "converged": converged if converged is not None else [True] * n,
            "fingerprint": "fp",
            "scale": "test",
        }
    )


def test_twelve_runs_window_ten_score_the_median_of_three_windows_by_hand() -> None:
    # window 1, runs 1-10: drop 99 (run 8) and 108 (run 10); mean of the other eight
    w1 = (100 + 104 + 101 + 103 + 102 + 105 + 106 + 107) / 8  # 103.5
    # window 2, runs 2-11: drop 99 and 130 (run 11)
    w2 = (104 + 101 + 103 + 102 + 105 + 106 + 107 + 108) / 8  # 104.5
    # window 3, runs 3-12: drop 90 (run 12) and 130
    w3 = (101 + 103 + 102 + 105 + 106 + 99 + 107 + 108) / 8  # 103.875
    windows = window_scores(TIMES, [True] * 12, 10, labels=list(range(1, 13)))
    assert windows.values == pytest.approx([w1, w2, w3])
    assert windows.first_runs == [1, 2, 3]
    assert windows.chosen_first_run == 3  # 103.5 < 103.875 < 104.5: the middle one
    row = summarize(runs_frame(TIMES), window=10).iloc[0]
    assert row["score_s"] == pytest.approx(w3)
    assert row["n_runs"] == 12  # all M runs are counted and kept
    assert row["window_first_run"] == 3
    assert parse_scores(row["window_scores"]) == pytest.approx([w1, w2, w3])
    assert (row["dropped_fastest_run"], row["dropped_slowest_run"]) == (12, 11)


def test_a_failed_run_inside_a_window_is_dropped_as_the_slowest_and_two_make_it_infinite() -> None:
    times: list[float | None] = [100.0, 101.0, None, 103.0, None, 105.0]
    converged = [True, True, False, True, False, True]
    windows = window_scores(times, converged, 4, labels=[1, 2, 3, 4, 5, 6])
    # runs 1-4: run 3 failed, dropped as slowest; 100 dropped as fastest: (101 + 103) / 2
    # runs 2-5 and 3-6: two failed runs, more than one may be: no score, infinite
    assert windows.values[0] == pytest.approx(102.0)
    assert windows.values[1:] == [math.inf, math.inf]
    # lower median of (102, inf, inf) is the middle one: an infinite window, so no score
    row = summarize(runs_frame(times, converged), window=4).iloc[0]
    assert not row["valid"] and pd.isna(row["score_s"])
    assert "the median window (runs 2..5) has no score" in row["reason"]
    assert row["window_scores"] == "102 inf inf"


def test_an_even_number_of_windows_takes_the_lower_median() -> None:
    assert median_position([10.0, 40.0, 20.0, 30.0]) == 2  # sorted 10, 20 | 30, 40: 20
    assert median_position([5.0, 5.0]) == 0  # equal scores: the earlier window
    times = [100.0, 110.0, 90.0, 120.0, 95.0]  # window 4: two windows
    windows = window_scores(times, [True] * 5, 4)
    assert windows.values == pytest.approx([105.0, 102.5])
    assert windows.chosen == 1  # the faster of the two, a measured score, not their mean


def test_without_a_window_summary_csv_is_byte_for_byte_what_it_was(tmp_path: Path) -> None:
    out = tmp_path / "summary.csv"
    runs = str(GOLDEN / "runs.csv")
    assert tables.main(["summarize", "--runs", runs, "--output", str(out)]) == 0
    assert out.read_bytes() == (GOLDEN / "summary.csv").read_bytes()
    windowed = tmp_path / "windowed.csv"
    assert (
        tables.main(["summarize", "--runs", runs, "--window", "3", "--output", str(windowed)]) == 0
    )
    header = windowed.read_text().splitlines()[0]
    assert header == out.read_text().splitlines()[0] + ",window_first_run,window_scores"


def test_a_window_that_does_not_fit_the_runs_is_refused_naming_them() -> None:
    with pytest.raises(AggregationError, match=r"b/s: window 13 is out of range for 12 runs"):
        summarize(runs_frame(TIMES), window=13)


def test_config_window_checks_name_the_key_and_both_numbers() -> None:
    config = {
        "statistics": {"window": 10},
        "benchmarks": {
            "a": {"runs": 12},
            "b": {"runs": 8},
            "c": {"runs": 40, "window": 5, "mlperf": {"olympic_drop": 4}},
        },
    }
    assert window_of(config, "a") == 10 and window_of(config, "c") == 5
    problems = window_problems(config, lambda path: ".".join(map(str, path)))
    assert problems == [
        "statistics.window: window 10 is more than benchmark b's runs (8): the M-of-N protocol "
        "scores windows of N among M >= N runs",
        "benchmarks.c.window: window 5 is less than the 9 runs an olympic mean of benchmark c "
        "needs (it drops 4 at each end)",
    ]
    assert window_of({"statistics": {}, "benchmarks": {"a": {"runs": 5}}}, "a") is None


def test_the_report_shows_every_window_and_marks_the_chosen_one(tmp_path: Path) -> None:
    runs = runs_frame(TIMES)
    html = "\n".join(window_section(summarize(runs, window=10), runs))
    assert html.count("<tr>") + html.count('<tr class="chosen">') == 4  # header + 3 windows
    chosen = [line for line in html.splitlines() if 'class="chosen"' in line]
    assert (
        len(chosen) == 1 and "runs 3..12" in chosen[0] and "chosen: the median window" in chosen[0]
    )
    assert "runs 1..10" in html and "runs 2..11" in html
    assert window_section(summarize(runs), runs) == []  # no window: no section


def test_statistics_window_is_checked_against_the_campaigns_benchmarks_only():
    """The round files define benchmarks a campaign does not run (v0.6's have 5 runs): a shared
    window of 10 is refused only for a campaign benchmark with fewer runs; a benchmark's own
    window is always checked."""
    config = {
        "campaign": {"benchmarks": ["big"]},
        "statistics": {"window": 10},
        "benchmarks": {"big": {"runs": 12}, "small": {"runs": 5}},
    }
    assert window_problems(config) == []
    config["campaign"]["benchmarks"].append("small")
    assert [p for p in window_problems(config) if "small" in p]
    config["campaign"]["benchmarks"].remove("small")
    config["benchmarks"]["small"]["window"] = 10
    assert [p for p in window_problems(config) if "small" in p]
