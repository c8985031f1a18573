"""The leaderboard a reader of the official MLPerf table cannot get there: the systems of one
benchmark ranked by score, each with an interval from its own runs, and which neighbouring
ranks the runs cannot tell apart; from synthetic tables and from NVIDIA's published v5.0 logs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scripts.analysis import leaderboard as lb
from scripts.analysis import run_columns, summary_table
from scripts.analysis.plots import plot_leaderboard
from scripts.analysis.scoring import olympic_score
from scripts.core.layout import result_files
from scripts.mlperf.log_parser import parse_file
from scripts.mlperf.outcome import run_outcome
from tests.conftest import need_fixtures

V50 = "mlperf-v5.0-nvidia"
# benchmark -> quality (metric target, direction) as the v5.0 rules set them
QUALITY = {"bert": (0.720, "higher"), "llama31_405b": (5.6, "lower")}


def runs_frame(times: dict[str, list[float | None]], benchmark: str = "b") -> pd.DataFrame:
    """runs.csv of made-up systems: a None time is a run that did not converge."""
    rows = [
        {
            "benchmark": benchmark,
            "system": system,
            "run": i,
            "time_to_train_s": t,
            "converged": t is not None,
            "log_problems": "",
            "fingerprint": None,
            "scale": "full",
        }
        for system, ts in times.items()
        for i, t in enumerate(ts, start=1)
    ]
    return pd.DataFrame(rows, columns=run_columns.RUN_COLUMNS)


# ---------------------------------------------------------------------------------------------
# The interval of one system's score


def test_the_interval_scores_each_resample_as_olympic_score_with_the_miss_kept() -> None:
    times = [100.0, 104.0, 97.0, 120.0, 101.0, 99.0, 110.0, 103.0, 98.0]
    seed, resamples = 7, 400
    # the same draws, each scored by scoring.olympic_score with the non-converged run added
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(times), size=(resamples, len(times)))
    scores = []
    for row in idx:
        drawn = [times[i] for i in row]
        score = olympic_score([*drawn, None], [True] * len(drawn) + [False])
        scores.append(score.score_s)
    expected = tuple(np.quantile(scores, [0.025, 0.975], method="linear"))
    got = lb.bootstrap_score_interval(times, 1, resamples=resamples, seed=seed)
    assert got == pytest.approx(expected, rel=1e-12)
    assert got == lb.bootstrap_score_interval(times, 1, resamples=resamples, seed=seed)
    assert got[0] <= olympic_score([*times, None], [True] * 9 + [False]).score_s <= got[1]


def test_with_all_runs_converged_both_ends_are_dropped() -> None:
    times = [50.0, 52.0, 51.0, 58.0, 49.0]
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 5, size=(300, 5))
    scores = [olympic_score([times[i] for i in row], [True] * 5).score_s for row in idx]
    expected = tuple(np.quantile(scores, [0.025, 0.975], method="linear"))
    assert lb.bootstrap_score_interval(times, 0, resamples=300, seed=3) == pytest.approx(expected)


def test_three_runs_give_their_range_whatever_the_seed() -> None:
    """llama31_405b is scored on 3 runs: the score is their median, and its interval is
    [fastest, slowest] (each end is a resample's score with probability 7/27)."""
    times = [16150.0, 15890.0, 16420.0]
    for seed in (1, 2, 20190618):
        assert lb.bootstrap_score_interval(times, 0, seed=seed) == (min(times), max(times))


def test_no_interval_where_there_is_no_score() -> None:
    assert all(math.isnan(x) for x in lb.bootstrap_score_interval([10.0, 11.0], 0))
    assert all(math.isnan(x) for x in lb.bootstrap_score_interval([10.0], 1))
    assert all(math.isnan(x) for x in lb.bootstrap_score_interval([10.0, 11.0, 12.0], 2))
    with pytest.raises(ValueError, match="finite"):
        lb.bootstrap_score_interval([10.0, float("inf"), 12.0])


# ---------------------------------------------------------------------------------------------
# Ranking made-up systems


def synthetic() -> tuple[pd.DataFrame, pd.DataFrame]:
    runs = runs_frame(
        {
            "fast": [50.0, 51.0, 50.5, 50.2, 50.8],
            "mid_a": [70.0, 74.0, 72.0, 71.0, 75.0],
            "mid_b": [73.0, 76.0, 72.5, 74.5, None],  # one miss: dropped as the slowest
            "slow": [90.0, 92.0, 91.0, 91.5, 90.5],
            "broken": [60.0, None, None, 61.0, 62.0],  # two misses: no score
        }
    )
    return summary_table.summarize(runs), runs


def test_systems_are_ranked_by_score_and_overlapping_neighbours_grouped() -> None:
    summary, runs = synthetic()
    board = lb.leaderboard(summary, runs, resamples=2000)
    ranked = board[board["rank"].notna()]
    assert ranked["system"].tolist() == ["fast", "mid_a", "mid_b", "slow"]
    assert ranked["rank"].tolist() == [1, 2, 3, 4]
    scores = summary.set_index("system")["score_s"]
    for row in ranked.to_dict("records"):
        assert row["score_s"] == scores[row["system"]]
        assert row["score_ci95_low_s"] <= row["score_s"] <= row["score_ci95_high_s"]
    assert ranked["overlaps_next"].tolist()[:3] == [False, True, False]
    assert ranked["group"].tolist() == [
        "distinct",
        "ranks 2 to 3 overlap",
        "ranks 2 to 3 overlap",
        "distinct",
    ]
    last = board.iloc[-1]
    assert last["system"] == "broken" and pd.isna(last["rank"]) and pd.isna(last["score_s"])
    assert "2 runs did not converge (runs 2, 3)" in last["reason"]
    # local systems: no submitter or accelerators, so no accelerator-minutes
    assert board["accelerator_minutes"].isna().all() and board["submitter"].isna().all()


def test_accelerators_submitter_and_rcp_factor_are_used_when_summary_has_them() -> None:
    summary, runs = synthetic()
    plain = lb.leaderboard(summary, runs, resamples=500).set_index("system")
    given = {  # system: submitter, accelerator, n_accelerators, rcp_scaling_factor
        "fast": ("Org", "H100", 8, 1.0),
        "mid_a": ("Org", "H100", 8, 1.0),
        "mid_b": ("Other", "B200", 64, 1.5),
        "slow": ("", None, None, None),  # a local system: empty cells
        "broken": ("Org", "H100", 8, 1.0),
    }
    names = ["submitter", "accelerator", "n_accelerators", "rcp_scaling_factor"]
    extra = summary.assign(
        **{n: [given[s][i] for s in summary["system"]] for i, n in enumerate(names)}
    )
    board = lb.leaderboard(extra, runs, resamples=500).set_index("system")
    fast = board.loc["fast"]
    assert fast["accelerator_minutes"] == pytest.approx(fast["score_s"] / 60 * 8)
    assert (fast["submitter"], fast["accelerator"], fast["n_accelerators"]) == ("Org", "H100", 8)
    assert pd.isna(board.loc["slow", "submitter"]) and pd.isna(board.loc["slow", "n_accelerators"])
    assert pd.isna(board.loc["slow", "accelerator_minutes"])
    # the scaled system's interval is its runs' interval times its factor
    for end in ("score_ci95_low_s", "score_ci95_high_s"):
        assert board.loc["mid_b", end] == pytest.approx(1.5 * plain.loc["mid_b", end])
        assert board.loc["fast", end] == plain.loc["fast", end]


def test_equal_scores_share_a_rank_and_a_group() -> None:
    runs = runs_frame({"a": [10.0, 11.0, 12.0], "b": [10.0, 11.0, 12.0], "c": [30.0, 31.0, 32.0]})
    board = lb.leaderboard(summary_table.summarize(runs), runs, resamples=200)
    assert board["rank"].tolist() == [1, 1, 3]
    assert board["group"].tolist() == ["rank 1 (a tie) overlaps"] * 2 + ["distinct"]


def test_groups_chain_overlaps_and_an_unknown_link_is_not_a_difference() -> None:
    assert lb.groups([True, False, None, True], [1, 2, 3, 4, 5]) == [
        "ranks 1 to 2 overlap",
        "ranks 1 to 2 overlap",
        "ranks 3 to 5 overlap",
        "ranks 3 to 5 overlap",
        "ranks 3 to 5 overlap",
    ]
    assert lb.groups([], [1]) == ["distinct"] and lb.groups([], []) == []


# ---------------------------------------------------------------------------------------------
# NVIDIA's published v5.0 results


def published_runs(fixtures: Path, system: str, benchmark: str) -> pd.DataFrame:
    """runs.csv of one published folder, parsed by the project's parser."""
    target, direction = QUALITY[benchmark]
    rows = []
    for run, log in enumerate(result_files(fixtures / V50 / "results" / system / benchmark), 1):
        outcome = run_outcome(parse_file(log), target, direction)
        rows.append(
            {
                "benchmark": benchmark,
                "system": system,
                "run": run,
                "time_to_train_s": outcome.time_to_train_s,
                "converged": outcome.converged,
                "log_problems": "; ".join(outcome.log_problems),
                "scale": "full",
            }
        )
    return pd.DataFrame(rows, columns=run_columns.RUN_COLUMNS)


def published_summary(fixtures: Path, runs: pd.DataFrame) -> pd.DataFrame:
    """summary.csv with the columns an import adds from systems/<system>.json and
    scaling.json: submitter, accelerator, n_accelerators, the RCP factor and the scaled score."""
    summary = summary_table.summarize(runs)
    extra = []
    for row in summary.to_dict("records"):
        desc = json.loads((fixtures / V50 / "systems" / f"{row['system']}.json").read_text())
        scaling = fixtures / V50 / "results" / row["system"] / row["benchmark"] / "scaling.json"
        factor = json.loads(scaling.read_text())["scaling_factor"] if scaling.exists() else 1.0
        extra.append(
            {
                "submitter": desc["submitter"],
                "division": desc["division"],
                "accelerator": desc["accelerator_model_name"],
                "n_accelerators": int(desc["accelerators_per_node"]) * int(desc["number_of_nodes"]),
                "score_unscaled_s": row["score_s"],
                "rcp_scaling_factor": factor,
                "score_s": row["score_s"] * factor,
            }
        )
    return summary.assign(**pd.DataFrame(extra).to_dict("list"))


def expected_minutes(fixtures: Path, system: str, benchmark: str) -> float:
    table = pd.read_csv(fixtures / V50 / "expected.tsv", sep="\t")
    hit = table[(table["system"] == system) & (table["benchmark"] == benchmark)]
    return float(hit["score_min"].iloc[0])


def test_two_published_bert_systems_rank_as_the_official_scores_and_apart() -> None:
    fixtures = need_fixtures()
    systems = ["nyx_n1_ngc25.04_pytorch", "tyche_ngpu64_ngc25.04_pytorch"]
    runs = pd.concat([published_runs(fixtures, s, "bert") for s in systems], ignore_index=True)
    summary = published_summary(fixtures, runs)
    board = lb.leaderboard(summary, runs)
    assert board["system"].tolist() == systems[::-1]  # 64 GB200 before one 8-GPU node
    assert board["rank"].tolist() == [1, 2]
    for row in board.to_dict("records"):
        official_s = expected_minutes(fixtures, row["system"], "bert") * 60
        assert row["score_s"] == pytest.approx(official_s, rel=1e-9)
        assert row["score_ci95_low_s"] <= row["score_s"] <= row["score_ci95_high_s"]
        assert row["accelerator_minutes"] == pytest.approx(
            row["score_s"] / 60 * row["n_accelerators"]
        )
        assert row["submitter"] == "NVIDIA"
    tyche = board.iloc[0]
    assert (tyche["n_runs"], tyche["n_converged"]) == (10, 9)  # result_4 misses the target
    assert tyche["n_accelerators"] == 64
    assert tyche["score_ci95_high_s"] < board.iloc[1]["score_ci95_low_s"]
    assert board["overlaps_next"].tolist()[0] is False
    assert board["group"].tolist() == ["distinct", "distinct"]


def test_the_published_3_run_benchmark_gets_its_range_scaled() -> None:
    fixtures = need_fixtures()
    system = "eos-dfw_n64_ngc25.01_nemo"
    runs = published_runs(fixtures, system, "llama31_405b")
    summary = published_summary(fixtures, runs)
    row = lb.leaderboard(summary, runs).iloc[0]
    factor = summary["rcp_scaling_factor"].iloc[0]
    times = runs["time_to_train_s"].astype(float)
    assert factor == pytest.approx(7 / 6)
    assert row["score_s"] == pytest.approx(expected_minutes(fixtures, system, "llama31_405b") * 60)
    assert row["score_ci95_low_s"] == pytest.approx(times.min() * factor)
    assert row["score_ci95_high_s"] == pytest.approx(times.max() * factor)


# ---------------------------------------------------------------------------------------------
# The command and the plot


def test_the_command_writes_the_table_and_the_plot(tmp_path: Path) -> None:
    summary, runs = synthetic()
    summary.to_csv(tmp_path / "summary.csv", index=False)
    runs.to_csv(tmp_path / "runs.csv", index=False)
    out, png = tmp_path / "leaderboard.csv", tmp_path / "plots" / "leaderboard.png"
    argv = ["--summary", str(tmp_path / "summary.csv"), "--runs", str(tmp_path / "runs.csv")]
    argv += ["--output", str(out), "--plot", str(png), "--bootstrap-resamples", "300"]
    assert lb.main(argv) == 0
    board = pd.read_csv(out)
    assert board.columns.tolist() == lb.COLUMNS
    assert board["system"].tolist() == ["fast", "mid_a", "mid_b", "slow", "broken"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_the_plot_of_an_empty_leaderboard_is_still_written(tmp_path: Path) -> None:
    import matplotlib.image as mpimg  # the PNG must load, not just exist

    runs = runs_frame({"broken": [1.0, None, None]})
    board = lb.leaderboard(summary_table.summarize(runs), runs)
    plot_leaderboard(board, tmp_path / "empty.png")
    assert mpimg.imread(tmp_path / "empty.png").shape[0] > 100
