"""summary.csv (one row per system) from runs.csv, and summary.partial.csv while runs are
missing.

:func:`system_runs` selects what a system's row is computed from (the MLPerf score from every
run, the statistics of time to train from the converged runs); every column of the row is its
entry of the registry :data:`scripts.analysis.summary_columns.SUMMARY`. Aggregation refuses
to mix runs of one system whose fingerprints differ (different dataset, target, command,
hyper-parameters or environment): such runs are not comparable (:class:`AggregationError`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pandas as pd

from scripts.analysis import stats, summary_columns
from scripts.analysis.run_columns import SYNTHETIC_REASON, has_log_problems, synthetic_runs
from scripts.analysis.scoring import Score, olympic_score, usable_time
from scripts.analysis.windows import Windows, chosen_score, window_scores


class AggregationError(RuntimeError):
    pass


def summarize_system(
    runs: pd.DataFrame,
    max_nonconverged: int = 1,
    *,
    resamples: int = stats.BOOTSTRAP_RESAMPLES,
    seed: int = stats.BOOTSTRAP_SEED,
    olympic_drop: int | None = None,
    window: int | None = None,
) -> dict[str, Any]:
    """One summary row from the runs of one benchmark on one system: every column of
    :func:`scripts.analysis.summary_columns.registry` (with ``window``, the M-of-N columns
    too), from the runs as :func:`system_runs` reads them."""
    system = system_runs(
        runs,
        max_nonconverged,
        resamples=resamples,
        seed=seed,
        olympic_drop=olympic_drop,
        window=window,
    )
    return {c.name: c.source(system) for c in summary_columns.registry(window)}


def scoring_of(
    runs: pd.DataFrame, olympic_drop: int | None = None, max_nonconverged: int = 1
) -> tuple[int, float]:
    """How a system's runs are scored: the olympic drop (``olympic_drop`` when given, else the
    runs' ``olympic_drop`` column, else ``max_nonconverged`` but at least 1: the summarizer's
    ``max_dropped_scores`` is both numbers) and the RCP scaling factor (the runs'
    ``rcp_scaling_factor``, 1.0 where a run has none). AggregationError when the runs of one
    system carry different factors (they come from one published folder)."""
    drop = olympic_drop
    if drop is None:
        logged = runs["olympic_drop"].dropna() if "olympic_drop" in runs else pd.Series([])
        drop = int(logged.max()) if len(logged) else max(1, max_nonconverged)
    factors = (
        sorted({float(f) for f in runs["rcp_scaling_factor"].fillna(1.0)})
        if "rcp_scaling_factor" in runs
        else [1.0]
    )
    if len(factors) > 1:
        raise AggregationError(
            f"{runs['benchmark'].iloc[0]}/{runs['system'].iloc[0]}: the runs carry different "
            f"RCP scaling factors ({', '.join(map(repr, factors))}); one system's runs come "
            "from one folder and its scaling.json: import them again"
        )
    return drop, factors[0] if factors else 1.0


def system_runs(
    runs: pd.DataFrame,
    max_nonconverged: int = 1,
    *,
    resamples: int = stats.BOOTSTRAP_RESAMPLES,
    seed: int = stats.BOOTSTRAP_SEED,
    olympic_drop: int | None = None,
    window: int | None = None,
) -> summary_columns.SystemRuns:
    """The runs of one benchmark on one system, as the summary columns read them.

    The MLPerf score uses every run (one non-converged run is dropped as the slowest); the
    statistics of time to train use the converged runs; epochs to converge use the converged
    runs, time per epoch every run that logged epochs (throughput does not depend on
    convergence). The bootstrap interval uses ``resamples`` and ``seed``
    (:func:`scripts.analysis.stats.bootstrap_mean_interval`). Outliers are counted and named, never
    dropped. The score drops :func:`scoring_of`'s olympic drop at each end and is multiplied
    by its scaling factor, as mlperf-logging's result summarizer does; with a drop above 1
    (Unet3D: 4) as many runs may miss the target (the summarizer's ``max_dropped_scores``),
    with 1, ``max_nonconverged``; none with a synthetic run. ``window``: :func:`_windows`.
    Raises AggregationError when the runs' fingerprints (or scaling factors) differ."""
    runs = runs.sort_values("run", kind="stable")
    fingerprints = one_fingerprint(runs)
    times = [None if pd.isna(t) else float(t) for t in runs["time_to_train_s"]]
    bad_log = has_log_problems(runs).tolist()
    # a run whose log has problems has no result, whatever its row says (olympic_score drops
    # times that are not usable the same way)
    converged = [bool(c) and not b for c, b in zip(runs["converged"], bad_log, strict=True)]
    run_numbers = runs["run"].tolist()
    drop, factor = scoring_of(runs, olympic_drop, max_nonconverged)
    allowed = drop if drop > 1 else min(max_nonconverged, drop)
    score = olympic_score(
        times,
        converged,
        max_nonconverged=allowed,
        labels=run_numbers,
        drop=drop,
        scaling_factor=factor,
    )
    windows = None
    if window is not None:
        windows = _windows(runs, times, converged, window, allowed, drop, factor)
        score = chosen_score(windows, score.n_runs, score.n_converged)
    ok = [c and usable_time(t) for c, t in zip(converged, times, strict=True)]
    return summary_columns.SystemRuns(
        runs=runs,
        fingerprints=fingerprints,
        bad_log=bad_log,
        run_numbers=run_numbers,
        score=unless_synthetic(runs, score),
        times=[t for t, k in zip(times, ok, strict=True) if k],
        time_runs=[r for r, k in zip(run_numbers, ok, strict=True) if k],
        converged_rows=runs[ok],
        resamples=resamples,
        seed=seed,
        windows=windows,
    )


def one_fingerprint(runs: pd.DataFrame) -> list[str]:
    """The runs' distinct fingerprints, at most one: AggregationError naming the runs of each
    when they differ (runs of different configurations are not comparable)."""
    fingerprints = sorted(set(runs["fingerprint"].dropna()))
    if len(fingerprints) > 1:
        groups = {
            fp[:12]: sorted(runs.loc[runs["fingerprint"] == fp, "run"].tolist())
            for fp in fingerprints
        }
        raise AggregationError(
            f"{runs['benchmark'].iloc[0]}/{runs['system'].iloc[0]}: runs were made under "
            f"different configurations and cannot be combined (runs by fingerprint: {groups}). "
            "Archive or delete the runs of the old configuration, then run again."
        )
    return fingerprints


def _windows(
    runs: pd.DataFrame,
    times: list[float | None],
    converged: list[bool],
    window: int,
    allowed: int,
    drop: int,
    factor: float,
) -> Windows:
    """The M-of-N protocol (:mod:`scripts.analysis.windows`): every window of ``window``
    consecutive runs (in run order) scored as the whole set would be; the system's score is the
    median window's. AggregationError naming the benchmark and system when ``window`` does not
    fit its runs."""
    try:
        return window_scores(
            times, converged, window, labels=runs["run"].tolist(), max_nonconverged=allowed,
            drop=drop, scaling_factor=factor,
        )  # fmt: skip
    except ValueError as exc:
        raise AggregationError(
            f"{runs['benchmark'].iloc[0]}/{runs['system'].iloc[0]}: {exc} ({len(times)} runs here)"
        ) from exc


def unless_synthetic(runs: pd.DataFrame, score: Score) -> Score:
    """``score``, or none where a run is synthetic (``implementation.synthetic``: a smoke run
    on the implementation's generated data is never a score)."""
    return unscored(score, SYNTHETIC_REASON) if any(synthetic_runs(runs)) else score


def unscored(score: Score, reason: str) -> Score:
    """``score`` without a score: not valid, no score_s, ``reason`` as why; the runs it
    counted and dropped are kept (the row still says how many converged)."""
    return dataclasses.replace(score, valid=False, reason=reason, score_s=None, unscaled_s=None)


def summarize(
    runs: pd.DataFrame,
    max_nonconverged: int = 1,
    *,
    resamples: int = stats.BOOTSTRAP_RESAMPLES,
    seed: int = stats.BOOTSTRAP_SEED,
    olympic_drop: int | None = None,
    window: int | None = None,
) -> pd.DataFrame:
    """summary.csv: one row per system. Without ``window`` its columns are
    :data:`scripts.analysis.summary_columns.SUMMARY`'s, exactly; with it, the M-of-N columns
    follow."""
    rows = [
        summarize_system(
            g,
            max_nonconverged,
            resamples=resamples,
            seed=seed,
            olympic_drop=olympic_drop,
            window=window,
        )
        for _, g in runs.groupby("system", sort=True)
    ]
    return pd.DataFrame(rows, columns=summary_columns.registry(window).names)


def summarize_partial(
    runs: pd.DataFrame, expected: Mapping[str, int], max_nonconverged: int = 1
) -> pd.DataFrame:
    """Like :func:`summarize` over the runs finished so far, marked ``partial`` per system.

    ``expected`` maps each system of the campaign to its number of runs; a system with no
    finished run yet gets a row with n_runs 0.
    """
    rows = []
    names = summary_columns.SUMMARY.names
    for system, n_expected in sorted(expected.items()):
        mine = runs[runs["system"] == system] if len(runs) else runs
        if len(mine):
            row = summarize_system(mine, max_nonconverged)
        else:
            row = {c: None for c in names} | {
                "system": system,
                "n_runs": 0,
                "n_converged": 0,
                "valid": False,
                "reason": "no finished run yet",
            }
        row["n_expected"] = n_expected
        row["partial"] = row["n_runs"] < n_expected
        if row["partial"]:
            note = f"partial: {row['n_runs']} of {n_expected} runs finished"
            row["reason"] = f"{note}; {row['reason']}" if row.get("reason") else note
            row["valid"] = False
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["partial", "n_expected", *names])
    if len(runs):
        frame["benchmark"] = runs["benchmark"].iloc[0]
    return frame
