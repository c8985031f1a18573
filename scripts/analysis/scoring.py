"""The MLPerf scoring rule, and the plain description of a system's run times.

``olympic_score`` implements the MLPerf Training (v0.7 and later) rule for combining
the times to train of repeated runs, as mlperf-logging's result summarizer computes it
(``_compute_strong_score_standalone``, ``_compute_olympic_average``): the olympic mean of the
converged runs, times the folder's RCP scaling factor (``scaling.json``); ``describe``
gives plain descriptive statistics with a Student-t confidence interval. Every other
estimator (bootstrap intervals, tests, the minimum detectable difference) is one named
function in :mod:`scripts.analysis.stats`.
Which runs to pass to ``describe`` (for example converged runs only) is the caller's
decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scripts.analysis.stats import t_quantile
from scripts.mlperf.log_validity import MAX_TIME_TO_TRAIN_S

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
    score_s: float | None  # olympic mean times scaling_factor; None when invalid
    dropped_fastest: int | None  # position in the input of the run dropped as fastest
    dropped_slowest: int | None  # position of the run dropped as slowest (non-converged if any)
    unscaled_s: float | None = None  # the olympic mean itself; None when invalid
    scaling_factor: float = 1.0  # the RCP factor of scaling.json (1.0 without one)
    # every position dropped, fastest first (with drop > 1 more than the two above)
    dropped: tuple[int, ...] = ()


def _fmt_runs(indices: Sequence[int]) -> str:
    word = "run" if len(indices) == 1 else "runs"
    return f"{word} {', '.join(str(i) for i in indices)}"


def _check_arguments(
    times_s: Sequence[float | None],
    converged: Sequence[bool],
    max_nonconverged: int,
    min_runs: int,
    labels: Sequence[int] | None,
    drop: int = 1,
    scaling_factor: float = 1.0,
) -> None:
    """ValueError for inputs :func:`olympic_score` cannot score."""
    if len(times_s) != len(converged):
        raise ValueError(
            f"times_s and converged differ in length ({len(times_s)} != {len(converged)})"
        )
    if isinstance(drop, bool) or not isinstance(drop, int) or drop < 1:
        raise ValueError(f"drop must be an integer of at least 1, got {drop!r}")
    if not 0 <= max_nonconverged <= drop:
        raise ValueError(
            f"max_nonconverged must be between 0 and drop ({drop}): a non-converged run is "
            f"dropped as one of the {drop} slowest, more cannot be; got {max_nonconverged}"
        )
    if not (math.isfinite(scaling_factor) and scaling_factor > 0):
        raise ValueError(f"scaling_factor must be a finite number above 0, got {scaling_factor}")
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
    *,
    drop: int = 1,
    scaling_factor: float = 1.0,
) -> Score:
    """MLPerf olympic mean of times to train, times the RCP scaling factor.

    Rule (MLPerf Training v0.7+, mlperf-logging's ``_compute_olympic_average``): of the
    runs, drop the ``drop`` fastest and the ``drop`` slowest (``drop`` is 1; 4 for Unet3D)
    and average the rest. A run that did not converge counts as one of the slowest and is
    dropped (its time is irrelevant and may be None); with k such runs the ``drop`` fastest
    converged runs and the ``drop - k`` slowest converged runs are dropped too. More
    non-converged runs than ``max_nonconverged`` (0 .. ``drop``), or fewer runs than
    ``max(min_runs, 2 * drop + 1)`` (nothing would be left to average), make the result
    invalid. ``score_s`` is the mean (``unscaled_s``) times ``scaling_factor``, the folder's
    ``scaling.json`` factor (1.0 without one), as the summarizer multiplies it.

    Runs are identified by their position in the input (0-based); ``reason`` names them by
    ``labels`` (e.g. run numbers) when given, else by position. Ties are deterministic: among
    equal times the run at the lowest position is dropped first. A run whose time is not
    :func:`usable_time` (None, NaN, inf, zero or negative) counts as not converged whatever
    its flag says, so such a time never reaches the score (defence in depth: the parser
    already gives an invalid log no time). Raises ValueError when the two sequences differ
    in length or the parameters are out of range.
    """
    _check_arguments(times_s, converged, max_nonconverged, min_runs, labels, drop, scaling_factor)
    names = list(labels) if labels is not None else list(range(len(times_s)))
    n_runs = len(times_s)
    conv = [bool(c) and usable_time(t) for c, t in zip(converged, times_s, strict=True)]
    n_conv = sum(conv)

    def invalid(reason: str) -> Score:
        return Score(n_runs, n_conv, False, reason, None, None, None, None, scaling_factor)

    need = max(min_runs, 2 * drop + 1)
    if n_runs < need:
        return invalid(f"need at least {need} runs for an olympic mean, have {n_runs}")

    nonconv = [i for i, c in enumerate(conv) if not c]
    if len(nonconv) > max_nonconverged:
        n_bad = len(nonconv)
        verb = "run did" if n_bad == 1 else "runs did"
        return invalid(
            f"{n_bad} {verb} not converge ({_fmt_runs([names[i] for i in nonconv])}); "
            f"MLPerf allows at most {max_nonconverged}"
        )

    fastest, slow, mean = _middle_mean(times_s, conv, drop - len(nonconv), drop)
    slowest = nonconv[0] if nonconv else slow[0]
    dropped = (*fastest, *nonconv, *slow)
    return Score(n_runs, n_conv, True, "", mean * scaling_factor, fastest[0], slowest, mean,
                 scaling_factor, dropped)  # fmt: skip


def _middle_mean(
    times_s: Sequence[float | None], conv: Sequence[bool], n_slow: int, drop: int
) -> tuple[list[int], list[int], float]:
    """The positions of the ``drop`` fastest and the ``n_slow`` slowest converged runs, and
    the mean of the converged runs left. Every converged run has a usable time; (time,
    position) sorts by time, then lowest position first on ties (the slowest: the lowest
    position among equal times too)."""
    ranked = sorted((float(t), i) for i, (t, c) in enumerate(zip(times_s, conv, strict=True)) if c)
    fastest = [i for _, i in ranked[:drop]]
    rest = ranked[drop:]
    slow = [i for _, i in sorted(rest, key=lambda ti: (-ti[0], ti[1]))[:n_slow]]
    kept = [t for t, i in rest if i not in slow]
    mean = min(max(math.fsum(kept) / len(kept), min(kept)), max(kept))  # fsum/n: ulp off
    return fastest, slow, mean


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
    ``t = scipy.stats.t.ppf(0.975, n - 1)`` (two-sided Student-t quantile, as
    :func:`scripts.analysis.stats.t_quantile` computes it).

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
        half = t_quantile(0.975, n - 1) * sem
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
