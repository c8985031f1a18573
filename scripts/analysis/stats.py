"""Statistics of run times: spread, intervals, outliers, and the comparison of two systems.

Every estimator is one small function whose docstring names its method (divisor, quantile
definition, interval method, test, seed), so a number in ``summary.csv`` or
``comparison.csv`` can be traced to exactly one definition. The MLPerf score itself (olympic
mean) lives in :mod:`scripts.analysis.scoring`; this module never decides which runs count (callers
pass
the converged runs' times).

Conventions: inputs are sequences of finite floats (seconds); a statistic that needs more
values than given is ``nan`` (never an exception), so a table row can always be written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # types only: numpy is imported on first use (_np)
    import numpy as np


__all__ = [
    "ALPHA",
    "BOOTSTRAP_RESAMPLES",
    "BOOTSTRAP_SEED",
    "CONFIDENCE",
    "IQR_K",
    "MODIFIED_Z_THRESHOLD",
    "POWER",
    "UNSTABLE_CV",
    "bootstrap_mean_interval",
    "bootstrap_speedup_interval",
    "coefficient_of_variation",
    "holm",
    "iqr_outliers",
    "mad",
    "mann_whitney_p",
    "mean",
    "min_detectable_difference",
    "modified_z_outliers",
    "prob_faster",
    "quartiles",
    "runs_for_relative_ci",
    "sem",
    "speedup",
    "std",
    "t_interval",
    "welch_p",
]

CONFIDENCE = 0.95  # every interval in the tables is a 95% interval (columns say ci95)
ALPHA = 1.0 - CONFIDENCE  # two-sided significance level of the tests
UNSTABLE_CV = 0.10  # cv at or above this marks a system "unstable"
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 20190618  # default seed of every bootstrap (config: statistics.bootstrap_seed)
IQR_K = 1.5  # Tukey's fences: outside [q1 - 1.5 IQR, q3 + 1.5 IQR]
MODIFIED_Z_THRESHOLD = 3.5  # Iglewicz and Hoaglin: |modified z| > 3.5
POWER = 0.80  # power of the minimum detectable difference

NAN = float("nan")


def _np() -> Any:
    """numpy, imported on first use, like scipy (:func:`_sps`)."""
    import numpy  # lazy: see _sps

    return numpy


def _sps() -> Any:
    """scipy.stats, imported on first use: it costs about 0.6 s, and every snakemake
    invocation imports this module (the sources of the column registry) to load the workflow."""
    from scipy import stats  # lazy: see the docstring

    return stats


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom: ``scipy.stats.t.ppf(p,
    df)``, computed by the function it calls (``scipy.special.stdtrit(df, p)``, the same
    value), so that a job that only needs t does not import scipy.stats: 0.29 s against 0.79 s
    (python -X importtime), in every summarize job."""
    from scipy import special  # lazy: see the docstring

    return float(special.stdtrit(df, p))


def _values(xs: Sequence[float]) -> np.ndarray:
    np = _np()
    arr = np.asarray([float(x) for x in xs], dtype=float)
    if not np.all(np.isfinite(arr)):
        raise ValueError("statistics need finite values")
    return arr


def mean(xs: Sequence[float]) -> float:
    """Arithmetic mean (``math.fsum`` / n); nan for no values."""
    return math.fsum(_values(xs)) / len(xs) if len(xs) else NAN


def std(xs: Sequence[float]) -> float:
    """Sample standard deviation with ddof=1 (divisor n - 1); nan when n < 2."""
    v = _values(xs)
    if len(v) < 2:
        return NAN
    m = math.fsum(v) / len(v)
    return math.sqrt(math.fsum((x - m) ** 2 for x in v) / (len(v) - 1))


def coefficient_of_variation(xs: Sequence[float]) -> float:
    """cv = std (ddof=1) / mean; nan when n < 2 or the mean is 0."""
    m, s = mean(xs), std(xs)
    return s / m if len(xs) >= 2 and m != 0 else NAN


def sem(xs: Sequence[float]) -> float:
    """Standard error of the mean: std (ddof=1) / sqrt(n); nan when n < 2."""
    return std(xs) / math.sqrt(len(xs)) if len(xs) >= 2 else NAN


def quartiles(xs: Sequence[float]) -> tuple[float, float, float]:
    """(q1, median, q3) by linear interpolation between order statistics: numpy's
    ``method="linear"`` (Hyndman and Fan type 7, the default of numpy, R and Excel)."""
    np = _np()
    v = _values(xs)
    if len(v) == 0:
        return NAN, NAN, NAN
    q1, q2, q3 = np.percentile(v, [25, 50, 75], method="linear")
    return float(q1), float(q2), float(q3)


def mad(xs: Sequence[float]) -> float:
    """Median absolute deviation from the median, unscaled (not multiplied by 1.4826);
    nan for no values."""
    np = _np()
    v = _values(xs)
    if len(v) == 0:
        return NAN
    return float(np.median(np.abs(v - np.median(v))))


def t_interval(xs: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student-t interval of the mean: mean +/- t(1 - (1 - confidence)/2, n - 1) * sem,
    t from ``scipy.stats.t.ppf`` (:func:`t_quantile`); (nan, nan) when n < 2."""
    if len(xs) < 2:
        return NAN, NAN
    half = t_quantile(0.5 + confidence / 2, len(xs) - 1) * sem(xs)
    m = mean(xs)
    return m - half, m + half


def _percentile_interval(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    np = _np()
    lo, hi = np.quantile(draws, [(1 - confidence) / 2, (1 + confidence) / 2], method="linear")
    return float(lo), float(hi)


def bootstrap_mean_interval(
    xs: Sequence[float],
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean.

    ``resamples`` samples of size n drawn with replacement by
    ``numpy.random.default_rng(seed).integers``; the interval is the (1-confidence)/2 and
    (1+confidence)/2 quantiles (numpy ``method="linear"``) of the resampled means. The same
    seed gives the same interval. (nan, nan) when n < 2.
    """
    np = _np()
    v = _values(xs)
    if len(v) < 2:
        return NAN, NAN
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(resamples, len(v)))
    return _percentile_interval(v[idx].mean(axis=1), confidence)


def speedup(reference_s: Sequence[float], system_s: Sequence[float]) -> float:
    """Ratio of means, mean(reference) / mean(system): > 1 means the system is faster
    (takes less time to train); nan when either side has no values."""
    if not len(reference_s) or not len(system_s):
        return NAN
    return mean(reference_s) / mean(system_s)


def bootstrap_speedup_interval(
    reference_s: Sequence[float],
    system_s: Sequence[float],
    confidence: float = CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of :func:`speedup`.

    The two samples are resampled independently (with replacement, each at its own size),
    reference first, from one ``numpy.random.default_rng(seed)``; the interval is the
    quantiles of mean(reference*) / mean(system*) as in :func:`bootstrap_mean_interval`.
    (nan, nan) when either side has fewer than 2 values.
    """
    np = _np()
    ref, sys_ = _values(reference_s), _values(system_s)
    if len(ref) < 2 or len(sys_) < 2:
        return NAN, NAN
    rng = np.random.default_rng(seed)
    ref_means = ref[rng.integers(0, len(ref), size=(resamples, len(ref)))].mean(axis=1)
    sys_means = sys_[rng.integers(0, len(sys_), size=(resamples, len(sys_)))].mean(axis=1)
    return _percentile_interval(ref_means / sys_means, confidence)


def iqr_outliers(xs: Sequence[float], k: float = IQR_K) -> list[int]:
    """Positions of values outside Tukey's fences [q1 - k IQR, q3 + k IQR] (quartiles as in
    :func:`quartiles`). Flagged, never dropped. Empty for fewer than 4 values."""
    v = _values(xs)
    if len(v) < 4:
        return []
    q1, _, q3 = quartiles(v)
    lo, hi = q1 - k * (q3 - q1), q3 + k * (q3 - q1)
    return [i for i, x in enumerate(v) if x < lo or x > hi]


def modified_z_outliers(xs: Sequence[float], threshold: float = MODIFIED_Z_THRESHOLD) -> list[int]:
    """Positions of values whose modified z-score 0.6745 (x - median) / MAD exceeds
    ``threshold`` in absolute value (Iglewicz and Hoaglin, 1993; MAD unscaled as in
    :func:`mad`). Flagged, never dropped. Empty for fewer than 3 values, and when the MAD is
    0 (the score is undefined: more than half the values are equal)."""
    np = _np()
    v = _values(xs)
    if len(v) < 3:
        return []
    m = mad(v)
    if m == 0:
        return []
    med = float(np.median(v))
    return [i for i, x in enumerate(v) if abs(0.6745 * (x - med) / m) > threshold]


def runs_for_relative_ci(
    xs: Sequence[float],
    relative_half_width: float = 0.05,
    confidence: float = CONFIDENCE,
    max_runs: int = 10_000,
) -> int | None:
    """The smallest number of runs n >= 2 whose Student-t interval of the mean,
    t(1 - (1 - confidence)/2, n - 1) * s / sqrt(n), is at most ``relative_half_width`` times
    the mean, taking the sample's std (ddof=1) and mean as the truth. None when fewer than 2
    values, a zero mean, or more than ``max_runs`` would be needed."""
    if len(xs) < 2:
        return None
    m, s = mean(xs), std(xs)
    if m == 0:
        return None
    if s == 0:
        return 2
    for n in range(2, max_runs + 1):
        if t_quantile(0.5 + confidence / 2, n - 1) * s / math.sqrt(n) <= (
            relative_half_width * abs(m)
        ):
            return n
    return None


def welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of Welch's unequal-variance t-test
    (``scipy.stats.ttest_ind(equal_var=False)``); nan when a side has fewer than 2 values or
    both have zero variance."""
    va, vb = _values(a), _values(b)
    if len(va) < 2 or len(vb) < 2 or (std(va) == 0 and std(vb) == 0):
        return NAN
    return float(_sps().ttest_ind(va, vb, equal_var=False).pvalue)


def mann_whitney_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided p-value of the Mann-Whitney U test (``scipy.stats.mannwhitneyu``,
    ``method="auto"``: exact without ties for samples under 8, else the normal
    approximation with tie and continuity correction); nan when a side is empty."""
    va, vb = _values(a), _values(b)
    if len(va) == 0 or len(vb) == 0:
        return NAN
    return float(_sps().mannwhitneyu(va, vb, alternative="two-sided", method="auto").pvalue)


def prob_faster(system_s: Sequence[float], reference_s: Sequence[float]) -> float:
    """Probability that a run of the system is faster than a run of the reference:
    P(X < Y) + P(X = Y) / 2 over all pairs (the common-language effect size, U / (n1 n2)).
    0.5 means no tendency; nan when a side is empty."""
    x, y = _values(system_s), _values(reference_s)
    if len(x) == 0 or len(y) == 0:
        return NAN
    less = (x[:, None] < y[None, :]).sum()
    ties = (x[:, None] == y[None, :]).sum()
    return float((less + 0.5 * ties) / (len(x) * len(y)))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in input order: sorted ascending, the i-th
    (0-based) of m is multiplied by m - i, made non-decreasing, capped at 1. nan stays nan
    and does not count in m."""
    finite = [(p, i) for i, p in enumerate(pvalues) if not math.isnan(p)]
    finite.sort()
    m = len(finite)
    out = [NAN] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(finite):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def min_detectable_difference(
    a: Sequence[float],
    b: Sequence[float],
    alpha: float = ALPHA,
    power: float = POWER,
) -> float:
    """The difference of means (seconds) that Welch's t-test at two-sided level ``alpha``
    would detect with probability ``power``, given these samples' sizes and std (ddof=1):
    (t(1 - alpha/2, df) + t(power, df)) * sqrt(s_a^2/n_a + s_b^2/n_b), with Welch-Satterthwaite
    df (the usual normal-shift approximation of the noncentral t). A difference smaller than
    this can go unnoticed, so "not significant" does not mean "the same". nan when a side has
    fewer than 2 values."""
    va, vb = _values(a), _values(b)
    if len(va) < 2 or len(vb) < 2:
        return NAN
    ea, eb = std(va) ** 2 / len(va), std(vb) ** 2 / len(vb)
    se = math.sqrt(ea + eb)
    if se == 0:
        return 0.0
    df = (ea + eb) ** 2 / (ea**2 / (len(va) - 1) + eb**2 / (len(vb) - 1))
    return (t_quantile(1 - alpha / 2, df) + t_quantile(power, df)) * se
