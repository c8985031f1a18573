"""The columns of comparison.csv (one row per system other than the reference), in file order:
the registry :data:`COMPARISON`.

A column's source reads, by its ``reads``:

- ``"pair"``: a :class:`Pair` (one system and the reference system);
- ``"table"``: the rows computed so far (one dict per system), returning one value per row
  (the Holm adjustment is over the rows of the table);
- ``"row"``: this row once the pair and table columns are computed (significance, verdict).

:func:`scripts.analysis.comparison_table.comparison_rows` computes them in that order. What an
entry holds is :class:`scripts.analysis.columns.Column`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from scripts.analysis import stats
from scripts.analysis.columns import Column, Registry, isna


@dataclass
class Pair:
    """What a comparison row is computed from: one system and the reference system."""

    benchmark: str
    system: str
    reference: str
    times: list[float]  # the converged runs' times to train, in run order
    reference_times: list[float]
    summary: Mapping[str, Any]  # the system's summary.csv row ({} without one)
    reference_summary: Mapping[str, Any]
    min_effect: float = 0.0
    resamples: int = stats.BOOTSTRAP_RESAMPLES
    seed: int = stats.BOOTSTRAP_SEED

    @cached_property
    def speedup_interval(self) -> tuple[float, float]:
        return stats.bootstrap_speedup_interval(
            self.reference_times, self.times, resamples=self.resamples, seed=self.seed
        )

    @cached_property
    def mdd_s(self) -> float:
        return stats.min_detectable_difference(self.times, self.reference_times)

    @cached_property
    def reference_mean_s(self) -> float:
        return stats.mean(self.reference_times)

    @cached_property
    def both_scores(self) -> bool:
        """Both systems have an MLPerf score."""
        score, ref_score = self.summary.get("score_s"), self.reference_summary.get("score_s")
        return not (isna(score) or isna(ref_score)) if score is not None else False

    def score_if_both(self, summary: Mapping[str, Any]) -> Any:
        return summary.get("score_s") if self.both_scores else None


def ratio(numerator: Any, denominator: Any) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or isna(numerator) or isna(denominator):
        return None
    return float(numerator) / float(denominator) if float(denominator) else None


def _score_speedup(p: Pair) -> float | None:
    if not p.both_scores:
        return None
    return float(p.reference_summary["score_s"]) / float(p.summary["score_s"])


def _mdd_rel(p: Pair) -> float:
    return p.mdd_s / p.reference_mean_s if p.reference_times and p.reference_mean_s else math.nan


def holm_of(column: str) -> Callable[[Sequence[Mapping[str, Any]]], list[float]]:
    """The source of ``column`` Holm-adjusted over the rows of the table."""

    def source(rows: Sequence[Mapping[str, Any]]) -> list[float]:
        return stats.holm([r[column] for r in rows])

    source.__doc__ = f"scripts.analysis.stats.holm of {column} over the rows"
    return source


def significant(row: Mapping[str, Any]) -> bool:
    """The speedup interval lies entirely above 1 + min_effect or entirely below
    1 / (1 + min_effect), and the Welch p-value (Holm-adjusted) is below alpha."""
    lo, hi, effect = row["speedup_ci95_low"], row["speedup_ci95_high"], row["min_effect"]
    excludes = not math.isnan(lo) and (lo > 1 + effect or hi < 1 / (1 + effect))
    pw = row["p_welch_holm"]
    tested = not math.isnan(pw) and pw < stats.ALPHA
    return bool(excludes and tested)


def _fmt(x: float | None, spec: str) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def verdict(row: Mapping[str, Any]) -> str:
    """One sentence for a comparison row: who is faster, by how much, how sure."""
    sys_, ref = row["system"], row["reference"]
    s, lo, hi = row["speedup"], row["speedup_ci95_low"], row["speedup_ci95_high"]
    if s is None or lo is None or math.isnan(s) or math.isnan(lo):
        return (
            f"{sys_} cannot be compared with {ref}: each needs at least 2 converged runs "
            f"(have {row['n']} and {row['n_reference']})"
        )
    ci = f"95% CI {_fmt(lo, '.2f')}-{_fmt(hi, '.2f')}"
    if row["significant"]:
        if s > 1:
            return f"{sys_} is {s:.2f}x faster than {ref} ({ci})"
        return f"{sys_} is {1 / s:.2f}x slower than {ref} (speedup {s:.2f}, {ci})"
    return (
        f"no significant difference between {sys_} and {ref}: speedup {s:.2f} ({ci}); "
        f"these runs would detect only a difference of {_fmt(row['mdd_rel'], '.1%')} of "
        f"{ref}'s mean or more (80% power), so this does not show they are the same"
    )


C = Column
COMPARISON = Registry(
    "comparison.csv",
    (
        C("benchmark", lambda p: p.benchmark, reads="pair"),
        C("system", lambda p: p.system, header="system", reads="pair"),
        C("reference", lambda p: p.reference, header="reference", reads="pair"),
        C("n", lambda p: len(p.times), "converged runs of the system", "runs", "int", reads="pair"),
        C(
            "n_reference",
            lambda p: len(p.reference_times),
            "converged runs of the reference",
            "ref. runs",
            "int",
            reads="pair",
        ),
        C("mean_s", lambda p: stats.mean(p.times), "their mean time to train", reads="pair"),
        C("reference_mean_s", lambda p: p.reference_mean_s, "the reference's", reads="pair"),
        C(
            "speedup",
            lambda p: stats.speedup(p.reference_times, p.times),
            "the ratio of mean times (reference / system; above 1 the system is faster)",
            "speedup",
            "ratio",
            reads="pair",
        ),
        C(
            "speedup_ci95_low",
            lambda p: p.speedup_interval[0],
            "low end of its percentile-bootstrap 95% interval (each system resampled on its own)",
            "95% CI low",
            "ratio",
            reads="pair",
        ),
        C(
            "speedup_ci95_high",
            lambda p: p.speedup_interval[1],
            "its high end",
            "95% CI high",
            "ratio",
            reads="pair",
        ),
        C(
            "score_s",
            lambda p: p.score_if_both(p.summary),
            "the MLPerf score of the system, when both systems have one",
            reads="pair",
        ),
        C(
            "reference_score_s",
            lambda p: p.score_if_both(p.reference_summary),
            "the reference's",
            reads="pair",
        ),
        C(
            "score_speedup",
            _score_speedup,
            "the same ratio of the MLPerf scores",
            "score speedup",
            "ratio",
            reads="pair",
        ),
        C(
            "epoch_speedup",
            lambda p: ratio(
                p.reference_summary.get("time_per_epoch_mean_s"),
                p.summary.get("time_per_epoch_mean_s"),
            ),
            "the ratio of mean times per epoch: throughput alone, without the seed-dependent "
            "number of epochs",
            "per-epoch speedup",
            "ratio",
            reads="pair",
        ),
        C(
            "p_welch",
            lambda p: stats.welch_p(p.times, p.reference_times),
            "two-sided Welch t-test p-value",
            "Welch p",
            "p",
            reads="pair",
        ),
        C(
            "p_welch_holm",
            holm_of("p_welch"),
            "p_welch Holm-adjusted over the systems compared (equal to it with one comparison)",
            "Welch p (Holm)",
            "p",
            reads="table",
        ),
        C(
            "p_mannwhitney",
            lambda p: stats.mann_whitney_p(p.times, p.reference_times),
            "two-sided Mann-Whitney U test p-value",
            "Mann-Whitney p",
            "p",
            reads="pair",
        ),
        C(
            "p_mannwhitney_holm",
            holm_of("p_mannwhitney"),
            "p_mannwhitney Holm-adjusted the same way",
            "M-W p (Holm)",
            "p",
            reads="table",
        ),
        C(
            "prob_faster",
            lambda p: stats.prob_faster(p.times, p.reference_times),
            "the probability that a run of the system beats a run of the reference",
            "P(run faster)",
            "prob",
            reads="pair",
        ),
        C(
            "min_effect",
            lambda p: p.min_effect,
            "the smallest relative difference that can be significant (statistics.min_effect)",
            reads="pair",
        ),
        C(
            "significant",
            significant,
            "the speedup interval excludes 1 (beyond the minimum effect, if one is set) and the "
            f"Holm-adjusted Welch p-value is below {stats.ALPHA:.2f}: with few runs a bootstrap "
            "interval alone can exclude 1 when the tests see no difference",
            "significant",
            "yes",
            reads="row",
        ),
        C(
            "mdd_s",
            lambda p: p.mdd_s,
            "the minimum detectable difference of means at 80% power, in seconds",
            reads="pair",
        ),
        C(
            "mdd_rel",
            _mdd_rel,
            "the same as a fraction of the reference mean",
            "detectable at 80%",
            "pct",
            reads="pair",
        ),
        C("verdict", verdict, "the row in one sentence (the top of report.html)", reads="row"),
    ),
)
del C
