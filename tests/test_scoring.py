"""Tests of scripts/analysis/scoring.py, including the olympic score of 10 real MLPerf v0.6 runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from scripts.analysis.scoring import describe, olympic_score
from scripts.mlperf.log_parser import parse_file
from scripts.mlperf.outcome import run_outcome
from tests.conftest import published

DATA = Path(__file__).resolve().parent / "data"
GNMT_TARGET = 24.0
V06_DGX1_MIN_S = 1217.981  # result_3.txt
V06_DGX1_MAX_S = 1549.861  # result_5.txt, the only run that needed 5 epochs


@pytest.fixture(scope="module")
def fixtures_dir() -> Path:
    """The published MLPerf logs (tests/data/published, unpacked)."""
    return published()


def middle_mean(times: list[float]) -> float:
    """Independent olympic mean: sort, drop the first and the last, average the rest."""
    s = sorted(times)
    return sum(s[1:-1]) / (len(s) - 2)


def check_v06_dgx1_score(times: list[float], converged: list[bool]) -> None:
    assert len(times) == 10 and all(converged)
    assert min(times) == pytest.approx(V06_DGX1_MIN_S, abs=1e-6)
    assert max(times) == pytest.approx(V06_DGX1_MAX_S, abs=1e-6)
    score = olympic_score(times, converged)
    assert score.valid and score.reason == ""
    assert score.n_runs == 10 and score.n_converged == 10
    assert score.dropped_fastest == 3  # result_3.txt
    assert score.dropped_slowest == 5  # result_5.txt
    assert score.score_s == pytest.approx(middle_mean(times), rel=1e-12)
    assert score.score_s == pytest.approx(1233.20325, abs=1e-6)  # = 20.55 min


def test_olympic_score_v06_dgx1_from_json() -> None:
    doc = json.loads((DATA / "v06_dgx1_times.json").read_text())
    runs = doc["runs"]
    times = [round(r["run_stop"] - r["run_start"], 3) for r in runs]
    converged = [r["status"] == "success" and r["final_eval_accuracy"] >= 24.0 for r in runs]
    check_v06_dgx1_score(times, converged)


def test_olympic_score_v06_dgx1_from_fixture_logs(fixtures_dir: Path) -> None:
    gnmt = fixtures_dir / "mlperf-v0.6-nvidia" / "dgx1_ngc19.05_pytorch" / "gnmt"
    outcomes = [run_outcome(parse_file(gnmt / f"result_{i}.txt"), GNMT_TARGET) for i in range(10)]
    times = [o.time_to_train_s for o in outcomes]
    assert all(t is not None for t in times)
    check_v06_dgx1_score([t for t in times if t is not None], [o.converged for o in outcomes])
    # the committed JSON agrees with what the parser reads from the full logs
    doc = json.loads((DATA / "v06_dgx1_times.json").read_text())
    for o, r in zip(outcomes, doc["runs"], strict=True):
        assert (o.run_start_s, o.run_stop_s, o.status) == (
            r["run_start"],
            r["run_stop"],
            r["status"],
        )


def test_one_nonconverged_run_is_dropped_as_slowest() -> None:
    times = [100.0, 90.0, None, 110.0, 95.0]
    conv = [True, True, False, True, True]
    s = olympic_score(times, conv)
    assert s.valid and s.reason == ""
    assert s.n_runs == 5 and s.n_converged == 4
    assert s.dropped_slowest == 2
    assert s.dropped_fastest == 1
    assert s.score_s == pytest.approx((100.0 + 110.0 + 95.0) / 3)  # 110 is kept


def test_nonconverged_time_is_irrelevant() -> None:
    conv = [True, False, True, True]
    a = olympic_score([10.0, 1.0, 12.0, 14.0], conv)
    b = olympic_score([10.0, 1e9, 12.0, 14.0], conv)
    assert a.score_s == b.score_s == pytest.approx(13.0)
    assert a.dropped_slowest == b.dropped_slowest == 1


def test_two_nonconverged_runs_are_invalid() -> None:
    times = [100.0, 90.0, 95.0, None, 101.0, 99.0, 98.0, 500.0]
    conv = [True, True, True, False, True, True, True, False]
    s = olympic_score(times, conv)
    assert not s.valid
    assert s.score_s is None and s.dropped_fastest is None and s.dropped_slowest is None
    assert s.n_runs == 8 and s.n_converged == 6
    assert s.reason == "2 runs did not converge (runs 3, 7); MLPerf allows at most 1"


def test_max_nonconverged_zero() -> None:
    s = olympic_score([1.0, 2.0, 3.0, 4.0], [True, True, True, False], max_nonconverged=0)
    assert not s.valid
    assert s.reason == "1 run did not converge (run 3); MLPerf allows at most 0"
    ok = olympic_score([1.0, 2.0, 3.0, 4.0], [True] * 4, max_nonconverged=0)
    assert ok.valid and ok.score_s == pytest.approx(2.5)


def test_too_few_runs_are_invalid() -> None:
    s = olympic_score([100.0, 101.0], [True, True])
    assert not s.valid and s.score_s is None
    assert s.reason == "need at least 3 runs for an olympic mean, have 2"
    s = olympic_score([1.0, 2.0, 3.0, 4.0], [True] * 4, min_runs=5)
    assert s.reason == "need at least 5 runs for an olympic mean, have 4"
    s = olympic_score([], [])
    assert not s.valid and s.n_runs == 0


def test_three_runs() -> None:
    s = olympic_score([3.0, 1.0, 2.0], [True, True, True])
    assert s.valid and s.score_s == 2.0
    assert (s.dropped_fastest, s.dropped_slowest) == (1, 0)
    s = olympic_score([3.0, None, 2.0], [True, False, True])
    assert s.valid and s.score_s == 3.0
    assert (s.dropped_fastest, s.dropped_slowest) == (2, 1)


def test_ties_drop_one_instance_lowest_index() -> None:
    s = olympic_score([5.0, 1.0, 5.0, 1.0, 3.0], [True] * 5)
    assert (s.dropped_fastest, s.dropped_slowest) == (1, 0)
    assert s.score_s == pytest.approx((5.0 + 1.0 + 3.0) / 3)
    s = olympic_score([7.0, 7.0, 7.0], [True] * 3)
    assert (s.dropped_fastest, s.dropped_slowest) == (0, 1)
    assert s.score_s == 7.0
    s = olympic_score([2.0, None, 2.0, 2.0], [True, False, True, True])
    assert (s.dropped_fastest, s.dropped_slowest) == (0, 1)
    assert s.score_s == 2.0


def test_deterministic_under_repetition() -> None:
    times = [4.0, 4.0, 2.0, 9.0, 9.0, 2.0]
    conv = [True] * 6
    results = [olympic_score(times, conv) for _ in range(5)]
    assert all(r == results[0] for r in results)
    assert (results[0].dropped_fastest, results[0].dropped_slowest) == (2, 3)
    assert results[0].score_s == pytest.approx((4.0 + 4.0 + 9.0 + 2.0) / 4)


@pytest.mark.parametrize("bad", [None, float("nan"), float("inf"), -float("inf"), 0.0, -43169.7])
def test_a_run_without_a_usable_time_counts_as_not_converged(bad: float | None) -> None:
    """Whatever its flag says: one is dropped as the slowest, two make the score invalid."""
    s = olympic_score([1.0, bad, 3.0, 2.0], [True] * 4)
    assert s.valid and s.n_converged == 3 and s.dropped_slowest == 1
    assert s.score_s == 2.5  # 1.0 dropped as the fastest, the bad run as the slowest
    s = olympic_score([1.0, None, 3.0, bad], [True] * 4)
    assert not s.valid and s.score_s is None
    assert s.reason == "2 runs did not converge (runs 1, 3); MLPerf allows at most 1"


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="length"):
        olympic_score([1.0, 2.0, 3.0], [True, True])
    with pytest.raises(ValueError, match="max_nonconverged"):
        olympic_score([1.0, 2.0, 3.0], [True] * 3, max_nonconverged=2)
    with pytest.raises(ValueError, match="min_runs"):
        olympic_score([1.0, 2.0, 3.0], [True] * 3, min_runs=2)


# ---------------------------------------------------------------------------
# describe()


def test_describe_matches_numpy_scipy() -> None:
    xs = [1225.22, 1236.47, 1217.981, 1549.861, 1232.369]
    d = describe(xs)
    a = np.asarray(xs)
    n = len(xs)
    mean = a.mean()
    std = a.std(ddof=1)
    sem = stats.sem(a)  # ddof=1 by default
    t = stats.t.ppf(0.975, n - 1)
    lo, hi = stats.t.interval(0.95, n - 1, loc=mean, scale=sem)
    assert d.n == n
    assert d.mean_s == pytest.approx(mean, rel=1e-12)
    assert d.std_s == pytest.approx(std, rel=1e-12)
    assert d.cv == pytest.approx(std / mean, rel=1e-12)
    assert d.sem_s == pytest.approx(sem, rel=1e-12)
    assert d.min_s == a.min() and d.max_s == a.max()
    assert d.median_s == np.median(a)
    assert d.ci95_low_s == pytest.approx(mean - t * sem, rel=1e-12)
    assert d.ci95_high_s == pytest.approx(mean + t * sem, rel=1e-12)
    assert (d.ci95_low_s, d.ci95_high_s) == (pytest.approx(lo), pytest.approx(hi))


def test_describe_even_n_median() -> None:
    d = describe([4.0, 1.0, 3.0, 2.0])
    assert d.median_s == 2.5 and d.mean_s == 2.5
    assert d.std_s == pytest.approx(np.std([1, 2, 3, 4], ddof=1))


def test_describe_single_value() -> None:
    d = describe([12.5])
    assert d.n == 1
    assert d.mean_s == d.median_s == d.min_s == d.max_s == 12.5
    for v in (d.std_s, d.cv, d.sem_s, d.ci95_low_s, d.ci95_high_s):
        assert math.isnan(v)


def test_describe_rejects_empty_and_nonfinite() -> None:
    with pytest.raises(ValueError):
        describe([])
    with pytest.raises(ValueError):
        describe([1.0, float("nan")])


def test_reason_names_runs_by_their_labels() -> None:
    score = olympic_score([1.0, None, 2.0, None], [True, False, True, False], labels=[1, 2, 3, 4])
    assert "runs 2, 4" in score.reason
    with pytest.raises(ValueError, match="labels"):
        olympic_score([1.0, 2.0, 3.0], [True] * 3, labels=[1])
