"""The MLPerf scoring rule, and the plain description of a system's run times.

``olympic_score`` implements the MLPerf Training (v0.7 and later) rule for combining
the times to train of repeated runs; ``describe`` gives plain descriptive statistics
with a Student-t confidence interval. Every other estimator (bootstrap intervals, tests,
the minimum detectable difference) is one named function in :mod:`scripts.stats`.
Which runs to pass to ``describe`` (for example converged runs only) is the caller's
decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scripts.mlperf_log import MAX_TIME_TO_TRAIN_S

__all__ = ["Describe", "Score", "describe", "olympic_score", "usable_time"]


def usable_time(t: object) -> bool:
    """A time to train that can be scored: a number of seconds above zero and below
    MAX_TIME_TO_TRAIN_S (317 years). Anything else (None, NaN, inf, 0, negative, not a
    number) is a run without a time."""
    if isinstance(t, bool) or not isinstance(t, int | float):
        return False
    return 0 < t < MAX_TIME_TO_TRAIN_S


@dataclass(slots=True)
class Score:
    """Result of the MLPerf olympic-mean rule over a set of runs."""

    n_runs: int
    n_converged: int
    valid: bool
    reason: str  # "" when valid, else why no score is given
    score_s: float | None  # olympic mean; None when invalid
    dropped_fastest: int | None  # position in the input of the run dropped as fastest
    dropped_slowest: int | None  # position of the run dropped as slowest (non-converged if any)


def _fmt_runs(indices: Sequence[int]) -> str:
    word = "run" if len(indices) == 1 else "runs"
    return f"{word} {', '.join(str(i) for i in indices)}"


def _check_arguments(
    times_s: Sequence[float | None],
    converged: Sequence[bool],
    max_nonconverged: int,
    min_runs: int,
    labels: Sequence[int] | None,
) -> None:
    """ValueError for inputs :func:`olympic_score` cannot score."""
    if len(times_s) != len(converged):
        raise ValueError(
            f"times_s and converged differ in length ({len(times_s)} != {len(converged)})"
        )
    if max_nonconverged not in (0, 1):
        raise ValueError(
            "max_nonconverged must be 0 or 1: a single non-converged run can be dropped "
            f"as the slowest, more cannot; got {max_nonconverged}"
        )
    if min_runs < 3:
        raise ValueError(f"min_runs must be at least 3 for an olympic mean, got {min_runs}")
    if labels is not None and len(labels) != len(times_s):
        raise ValueError(f"labels has {len(labels)} entries for {len(times_s)} runs")


def olympic_score(
    times_s: Sequence[float | None],
    converged: Sequence[bool],
    max_nonconverged: int = 1,
    min_runs: int = 3,
    labels: Sequence[int] | None = None,
) -> Score:
    """MLPerf olympic mean of times to train.

    Rule (MLPerf Training v0.7+): of the runs, drop the fastest and the slowest and
    average the rest.  A run that did not converge counts as the slowest run and is the
    one dropped (its time is irrelevant and may be None); the fastest converged run is
    dropped too and the remaining converged runs are averaged.  More non-converged runs
    than ``max_nonconverged`` (0 or 1), or fewer than ``min_runs`` runs (at least 3),
    make the result invalid.

    Runs are identified by their position in the input (0-based); ``reason`` names them by
    ``labels`` (e.g. run numbers) when given, else by position.
    Ties are deterministic: one instance only is dropped, the one at the lowest position.
    A run whose time is not :func:`usable_time` (None, NaN, inf, zero or negative) counts as
    not converged whatever its flag says, so such a time never reaches the score (defence in
    depth: the parser already gives an invalid log no time).  Raises ValueError when the two
    sequences differ in length or the parameters are out of range.
    """
    _check_arguments(times_s, converged, max_nonconverged, min_runs, labels)
    names = list(labels) if labels is not None else list(range(len(times_s)))
    n_runs = len(times_s)
    conv = [bool(c) and usable_time(t) for c, t in zip(converged, times_s, strict=True)]
    n_conv = sum(conv)

    def invalid(reason: str) -> Score:
        return Score(n_runs, n_conv, False, reason, None, None, None)

    if n_runs < min_runs:
        return invalid(f"need at least {min_runs} runs for an olympic mean, have {n_runs}")

    nonconv = [i for i, c in enumerate(conv) if not c]
    if len(nonconv) > max_nonconverged:
        n_bad = len(nonconv)
        verb = "run did" if n_bad == 1 else "runs did"
        return invalid(
            f"{n_bad} {verb} not converge ({_fmt_runs([names[i] for i in nonconv])}); "
            f"MLPerf allows at most {max_nonconverged}"
        )

    # every converged run has a usable time (see conv above)
    conv_times = [(float(t), i) for i, (t, c) in enumerate(zip(times_s, conv, strict=True)) if c]
    # (time, position) sorts by time, then lowest position first on ties.
    conv_times.sort()
    fastest = conv_times[0][1]
    rest = conv_times[1:]
    if nonconv:
        slowest = nonconv[0]
    else:
        # Slowest time; among equal times the lowest position (the fastest is excluded).
        t_max = rest[-1][0]
        slowest = min(i for t, i in rest if t == t_max)
    kept = [t for t, i in rest if i != slowest]
    score = min(max(math.fsum(kept) / len(kept), min(kept)), max(kept))  # fsum/n: ulp off
    return Score(n_runs, n_conv, True, "", score, fastest, slowest)


@dataclass(slots=True)
class Describe:
    """Descriptive statistics of a set of times (seconds)."""

    n: int
    mean_s: float
    std_s: float  # sample standard deviation, ddof=1; nan when n < 2
    cv: float  # std_s / mean_s; nan when n < 2 or mean_s == 0
    sem_s: float  # std_s / sqrt(n); nan when n < 2
    min_s: float
    median_s: float
    max_s: float
    ci95_low_s: float  # mean - t(0.975, n-1) * sem; nan when n < 2
    ci95_high_s: float  # mean + t(0.975, n-1) * sem; nan when n < 2


def describe(times_s: Sequence[float]) -> Describe:
    """Descriptive statistics of ``times_s``.

    Methods: mean is the arithmetic mean; ``std_s`` is the sample standard deviation
    with ddof=1 (divisor n-1); ``cv = std_s / mean_s``; ``sem_s = std_s / sqrt(n)``;
    median is the middle value (mean of the two middle values for even n); the 95%
    confidence interval of the mean is ``mean +/- t * sem`` with
    ``t = scipy.stats.t.ppf(0.975, n - 1)`` (two-sided Student-t quantile).

    std, cv, sem and the interval are nan when n < 2.  Raises ValueError for an empty
    input or a non-finite value.
    """
    xs = [float(x) for x in times_s]
    n = len(xs)
    if n == 0:
        raise ValueError("describe() needs at least one value")
    if not all(math.isfinite(x) for x in xs):
        raise ValueError("describe() needs finite values")
    xs.sort()
    mean = math.fsum(xs) / n
    mid = n // 2
    median = xs[mid] if n % 2 else (xs[mid - 1] + xs[mid]) / 2.0
    nan = float("nan")
    if n < 2:
        std = cv = sem = lo = hi = nan
    else:
        std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
        cv = std / mean if mean != 0 else nan
        sem = std / math.sqrt(n)
        from scipy import stats  # lazy: 0.6 s; the workflow's load imports this module

        half = float(stats.t.ppf(0.975, n - 1)) * sem
        lo, hi = mean - half, mean + half
    return Describe(
        n=n,
        mean_s=mean,
        std_s=std,
        cv=cv,
        sem_s=sem,
        min_s=xs[0],
        median_s=median,
        max_s=xs[-1],
        ci95_low_s=lo,
        ci95_high_s=hi,
    )
