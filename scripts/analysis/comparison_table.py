"""comparison.csv: every system against the reference system, from runs.csv and summary.csv.

:func:`choose_reference` picks the reference (the configured one, else the first system by
name); :func:`compare` makes one :class:`scripts.analysis.comparison_columns.Pair` per
other system and computes every column of the registry
:data:`scripts.analysis.comparison_columns.COMPARISON` from it (:func:`comparison_rows`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from scripts.analysis import comparison_columns, stats
from scripts.analysis.columns import Registry
from scripts.analysis.run_columns import has_log_problems
from scripts.analysis.scoring import usable_time


def choose_reference(systems: Sequence[str], wanted: str | None) -> tuple[str | None, str]:
    """The reference system of a comparison, and a note when it is not the configured one
    (the configured one has no runs of this benchmark: the first system by name instead)."""
    if not systems:
        return None, "no system has runs"
    if wanted in systems:
        return wanted, ""
    chosen = sorted(systems)[0]
    why = "none is configured" if wanted is None else f"{wanted!r} has no runs of this benchmark"
    return chosen, f"reference system {chosen!r} (first by name): {why}"


def converged_times(runs: pd.DataFrame, system: str) -> list[float]:
    """The times to train of a system's converged runs, in run order."""
    mine = runs[
        (runs["system"] == system) & runs["converged"].astype(bool) & ~has_log_problems(runs)
    ]
    mine = mine.sort_values("run", kind="stable")
    return [float(t) for t in mine["time_to_train_s"] if usable_time(t)]


def compare(
    runs: pd.DataFrame,
    summary: pd.DataFrame,
    reference: str | None,
    *,
    min_effect: float = 0.0,
    resamples: int = stats.BOOTSTRAP_RESAMPLES,
    seed: int = stats.BOOTSTRAP_SEED,
) -> pd.DataFrame:
    """One row per system other than the reference, comparing converged runs' times.

    - ``speedup``: mean(reference) / mean(system), > 1 is faster
      (:func:`scripts.analysis.stats.speedup`), with a percentile bootstrap 95% interval
      (:func:`scripts.analysis.stats.bootstrap_speedup_interval`, ``resamples``, ``seed``);
    - ``score_speedup``: the same ratio of the MLPerf (olympic) scores, when both are valid;
    - ``epoch_speedup``: the ratio of mean time per epoch (throughput alone, without the
      seed-dependent number of epochs), when both systems logged epochs;
    - ``p_welch``, ``p_mannwhitney``: two-sided tests; ``*_holm``: Holm-adjusted over the
      rows of this table (equal to the raw p-values with a single comparison);
    - ``prob_faster``: P(a run of the system is faster than a run of the reference);
    - ``significant``: the speedup interval lies entirely above 1 + min_effect or entirely
      below 1 / (1 + min_effect), and the Welch p-value (Holm-adjusted over the comparisons;
      the raw one with a single comparison) is below 0.05 as well. The test guards against
      the percentile bootstrap's known undercoverage with few runs: with 10 runs a skewed
      sample (a few runs one epoch longer) can give an interval that just excludes 1 while
      Welch and Mann-Whitney see no difference (tests/data/golden: c-same);
    - ``mdd_s``/``mdd_rel``: the minimum detectable difference of means at 80% power
      (:func:`scripts.analysis.stats.min_detectable_difference`), in seconds and as a fraction
      of the reference mean.
    """
    systems = sorted(set(runs["system"])) if len(runs) else []
    ref, _ = choose_reference(systems, reference)
    registry = comparison_columns.COMPARISON
    if ref is None:
        return pd.DataFrame([], columns=registry.names)
    summaries = {r["system"]: r for r in summary.to_dict("records")}
    pairs = [
        comparison_columns.Pair(
            benchmark=runs["benchmark"].iloc[0],
            system=system,
            reference=ref,
            times=converged_times(runs, system),
            reference_times=converged_times(runs, ref),
            summary=summaries.get(system, {}),
            reference_summary=summaries.get(ref, {}),
            min_effect=min_effect,
            resamples=resamples,
            seed=seed,
        )
        for system in systems
        if system != ref
    ]
    return pd.DataFrame(comparison_rows(pairs, registry), columns=registry.names)


def comparison_rows(
    pairs: Sequence[comparison_columns.Pair], registry: Registry
) -> list[dict[str, Any]]:
    """The rows of comparison.csv: first every column that reads its pair, then those that
    read the whole table (Holm), then those that read their finished row."""
    rows = [{c.name: c.source(p) for c in registry if c.reads == "pair"} for p in pairs]
    for c in registry:
        if c.reads == "table":
            for row, value in zip(rows, c.source(rows), strict=True):
                row[c.name] = value
    for row in rows:
        for c in registry:
            if c.reads == "row":
                row[c.name] = c.source(row)
    return rows
