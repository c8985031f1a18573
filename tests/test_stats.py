"""Statistics: golden tables from a fixture of run times, and each estimator checked against an
independent computation (numpy, scipy, or the formula by hand).

tests/data/golden/runs.csv is a made-up campaign shaped like real GNMT ones: times come in
steps about one epoch apart. a-baseline has two runs that needed a fifth epoch; b-faster is
about 1.28x faster; c-same has 5 runs, one of which did not converge, and is not
distinguishable from a-baseline. summary.csv and comparison.csv next to it are the golden
outputs: deterministic columns must match to 1e-9 (relative), bootstrap bounds to 0.5%.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from scripts.analysis import columns, comparison_table, stats, summary_table

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
BOOTSTRAP_COLUMNS = {"boot_ci95_low_s", "boot_ci95_high_s", "speedup_ci95_low", "speedup_ci95_high"}
BOOTSTRAP_REL_TOL = 0.005  # a change of RNG stream or quantile rule shows up as more than this


@pytest.fixture(scope="module")
def runs() -> pd.DataFrame:
    return pd.read_csv(GOLDEN / "runs.csv")


def times(runs: pd.DataFrame, system: str, converged_only: bool = True) -> list[float]:
    mine = runs[runs["system"] == system]
    if converged_only:
        mine = mine[mine["converged"]]
    return mine["time_to_train_s"].tolist()


def assert_frame_matches_golden(got: pd.DataFrame, golden: pd.DataFrame) -> None:
    assert list(got.columns) == list(golden.columns)
    assert len(got) == len(golden)
    for col in golden.columns:
        for i, (g, want) in enumerate(zip(got[col], golden[col], strict=True)):
            where = f"{col}[{i}]"
            if isinstance(want, float) and math.isnan(want):
                assert g is None or (isinstance(g, float) and math.isnan(g)), where
            elif isinstance(want, (int, float, np.number)) and not isinstance(want, bool):
                tol = BOOTSTRAP_REL_TOL if col in BOOTSTRAP_COLUMNS else 1e-9
                assert float(g) == pytest.approx(float(want), rel=tol), where
            else:
                assert str(g) == str(want), where


def test_summary_of_the_fixture_matches_the_golden_table(runs: pd.DataFrame) -> None:
    got = pd.read_csv(
        io.StringIO(
            summary_table.summarize(runs).to_csv(index=False, float_format=columns.FLOAT_FORMAT)
        )
    )
    assert_frame_matches_golden(got, pd.read_csv(GOLDEN / "summary.csv"))


def test_comparison_of_the_fixture_matches_the_golden_table(runs: pd.DataFrame) -> None:
    summary = summary_table.summarize(runs)
    table = comparison_table.compare(runs, summary, "a-baseline")
    got = pd.read_csv(io.StringIO(table.to_csv(index=False, float_format=columns.FLOAT_FORMAT)))
    golden = pd.read_csv(GOLDEN / "comparison.csv")
    assert_frame_matches_golden(got, golden)
    assert golden["verdict"][0] == "b-faster is 1.28x faster than a-baseline (95% CI 1.19-1.37)"
    assert golden["verdict"][1].startswith("no significant difference between c-same")
    assert "9.8% of a-baseline's mean" in golden["verdict"][1]


def test_golden_summary_values_agree_with_numpy_and_scipy(runs: pd.DataFrame) -> None:
    golden = pd.read_csv(GOLDEN / "summary.csv").set_index("system")
    for system in golden.index:
        xs = np.array(times(runs, system))
        row = golden.loc[system]
        assert row["mean_s"] == pytest.approx(xs.mean(), rel=1e-9)
        assert row["std_s"] == pytest.approx(xs.std(ddof=1), rel=1e-9)
        assert row["cv"] == pytest.approx(xs.std(ddof=1) / xs.mean(), rel=1e-9)
        assert row["sem_s"] == pytest.approx(sps.sem(xs), rel=1e-9)
        lo, hi = sps.t.interval(0.95, len(xs) - 1, loc=xs.mean(), scale=sps.sem(xs))
        assert (row["ci95_low_s"], row["ci95_high_s"]) == pytest.approx((lo, hi), rel=1e-9)
        assert row["median_s"] == pytest.approx(np.median(xs))
        assert row["mad_s"] == pytest.approx(sps.median_abs_deviation(xs, scale=1.0))
        assert (row["q1_s"], row["q3_s"]) == pytest.approx(tuple(np.percentile(xs, [25, 75])))
        # an independent bootstrap (scipy, another seed) lands close to ours
        boot = sps.bootstrap(
            (xs,), np.mean, method="percentile", n_resamples=10_000, rng=np.random.default_rng(7)
        ).confidence_interval
        width = row["boot_ci95_high_s"] - row["boot_ci95_low_s"]
        assert row["boot_ci95_low_s"] == pytest.approx(boot.low, abs=0.1 * width)
        assert row["boot_ci95_high_s"] == pytest.approx(boot.high, abs=0.1 * width)
    # the MLPerf score: drop fastest and slowest (c-same: the non-converged run is the slowest)
    a = sorted(times(runs, "a-baseline"))
    assert golden.loc["a-baseline", "score_s"] == pytest.approx(sum(a[1:-1]) / 8)
    c = sorted(times(runs, "c-same"))  # 4 converged runs; the fifth is dropped as slowest
    assert golden.loc["c-same", "score_s"] == pytest.approx(sum(c[1:]) / 3)
    assert golden.loc["c-same", "dropped_slowest_run"] == 4
    # flagged, never dropped: a-baseline's two 5-epoch runs
    assert golden.loc["a-baseline", "outlier_runs"] == "5 10"
    assert golden.loc["a-baseline", "n_runs"] == 10
    assert golden.loc["a-baseline", "epochs_to_converge_mean"] == pytest.approx(4.2)


def test_golden_comparison_values_agree_with_scipy(runs: pd.DataFrame) -> None:
    golden = pd.read_csv(GOLDEN / "comparison.csv").set_index("system")
    a = np.array(times(runs, "a-baseline"))
    raw_welch = {}
    for system in golden.index:
        x = np.array(times(runs, system))
        row = golden.loc[system]
        assert row["speedup"] == pytest.approx(a.mean() / x.mean(), rel=1e-9)
        per_epoch = runs.groupby("system")["time_per_epoch_s"].mean()
        assert row["epoch_speedup"] == pytest.approx(
            per_epoch["a-baseline"] / per_epoch[system], rel=1e-9
        )
        welch = sps.ttest_ind(x, a, equal_var=False).pvalue
        raw_welch[system] = welch
        assert row["p_welch"] == pytest.approx(welch, rel=1e-9)
        mw = sps.mannwhitneyu(x, a, alternative="two-sided")
        assert row["p_mannwhitney"] == pytest.approx(mw.pvalue, rel=1e-9)
        # U counts pairs where x > a (ties 1/2): P(x faster) = 1 - U / (n_x n_a)
        assert row["prob_faster"] == pytest.approx(1 - mw.statistic / (len(x) * len(a)))
    # Holm over the two comparisons: the smaller p doubled, the larger kept (monotone)
    small, large = sorted(raw_welch.values())
    holm = {s: golden.loc[s, "p_welch_holm"] for s in golden.index}
    assert sorted(holm.values()) == pytest.approx([2 * small, max(large, 2 * small)])
    assert bool(golden.loc["b-faster", "significant"]) is True
    # c-same: the bootstrap interval just excludes 1, Welch does not: not significant
    assert golden.loc["c-same", "speedup_ci95_low"] > 1
    assert golden.loc["c-same", "p_welch_holm"] > 0.05
    assert bool(golden.loc["c-same", "significant"]) is False


def test_mean_std_cv_sem_and_their_edge_cases() -> None:
    assert stats.mean([1.0, 2.0, 4.0]) == pytest.approx(7 / 3)
    assert stats.std([1.0, 2.0, 4.0]) == pytest.approx(np.std([1, 2, 4], ddof=1))
    assert math.isnan(stats.std([3.0])) and math.isnan(stats.mean([]))
    assert math.isnan(stats.coefficient_of_variation([5.0]))
    assert math.isnan(stats.sem([5.0]))
    with pytest.raises(ValueError, match="finite"):
        stats.mean([1.0, float("inf")])


def test_bootstrap_is_reproducible_with_its_seed_and_changes_without_it() -> None:
    xs = [10.0, 11.0, 12.5, 10.4, 13.9, 10.1]
    one = stats.bootstrap_mean_interval(xs, seed=1)
    assert one == stats.bootstrap_mean_interval(xs, seed=1)
    assert one != stats.bootstrap_mean_interval(xs, seed=2)
    assert one[0] < stats.mean(xs) < one[1]
    assert stats.bootstrap_mean_interval([1.0]) == pytest.approx((math.nan, math.nan), nan_ok=True)
    lo, hi = stats.bootstrap_speedup_interval([20.0, 21.0, 19.0], [10.0, 10.5, 9.5], seed=3)
    assert 1.7 < lo < 2.0 < hi < 2.3


def test_outliers_are_flagged_by_tukey_fences_and_the_modified_z_score() -> None:
    xs = [10.0, 10.2, 9.9, 10.1, 10.0, 14.0]
    # q1 10.0, q3 10.175, IQR 0.175: fences 9.7375 and 10.4375
    assert stats.iqr_outliers(xs) == [5]
    # median 10.05, MAD 0.1: 0.6745 * 3.95 / 0.1 = 26.6 for 14.0; 0.6745 * 0.15 / 0.1 = 1.0
    assert stats.modified_z_outliers(xs) == [5]
    assert stats.modified_z_outliers([1.0, 1.0, 1.0, 5.0]) == []  # MAD 0: undefined
    assert stats.iqr_outliers([1.0, 2.0, 30.0]) == []  # too few values


def test_runs_for_a_5_percent_interval() -> None:
    xs = [100.0, 110.0, 95.0, 105.0, 120.0]
    n = stats.runs_for_relative_ci(xs, 0.05)
    s, m = np.std(xs, ddof=1), np.mean(xs)

    def half(k: int) -> float:
        return sps.t.ppf(0.975, k - 1) * s / math.sqrt(k)

    assert n is not None and half(n) <= 0.05 * m < half(n - 1)
    assert stats.runs_for_relative_ci([5.0, 5.0]) == 2
    assert stats.runs_for_relative_ci([5.0]) is None


def test_holm_adjustment() -> None:
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.5]) == [0.5]
    out = stats.holm([0.02, math.nan, 0.9])
    assert out[0] == pytest.approx(0.04) and math.isnan(out[1]) and out[2] == 0.9


def test_minimum_detectable_difference_has_80_percent_power() -> None:
    a = [100.0, 103.0, 98.0, 101.0, 99.5, 104.0, 97.0, 102.0]
    b = [90.0, 96.0, 93.0, 95.5, 91.0, 97.0]
    mdd = stats.min_detectable_difference(a, b)
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    crit = sps.t.ppf(0.975, df)
    # exact power of Welch's test at a true difference of mdd (noncentral t)
    power = sps.nct.sf(crit, df, mdd / se) + sps.nct.cdf(-crit, df, mdd / se)
    assert power == pytest.approx(0.80, abs=0.01)
    assert math.isnan(stats.min_detectable_difference([1.0], b))


def test_welch_and_mann_whitney_need_enough_values() -> None:
    assert math.isnan(stats.welch_p([1.0], [2.0, 3.0]))
    assert math.isnan(stats.welch_p([1.0, 1.0], [2.0, 2.0]))  # no variance at all
    assert math.isnan(stats.mann_whitney_p([], [1.0]))
    assert stats.prob_faster([1.0, 2.0], [2.0, 3.0]) == pytest.approx((1 + 1 + 0.5 + 1) / 4)


def test_reference_falls_back_to_the_first_system_with_a_note() -> None:
    assert comparison_table.choose_reference(["b", "a"], "b") == ("b", "")
    ref, note = comparison_table.choose_reference(["b", "a"], "local")
    assert ref == "a" and "'local' has no runs of this benchmark" in note
    assert comparison_table.choose_reference([], "x")[0] is None


def test_t_quantile_is_scipy_stats_t_ppf() -> None:
    """t_quantile (scipy.special.stdtrit, so that summarize does not import scipy.stats) gives
    exactly scipy.stats.t.ppf, for the quantiles the tables use and others."""
    for df in (1, 2, 3, 4, 9, 29, 99, 1000, 2.5):
        for p in (0.8, 0.9, 0.95, 0.975, 0.995, 0.5, 0.025):
            assert stats.t_quantile(p, df) == float(sps.t.ppf(p, df)), (p, df)
