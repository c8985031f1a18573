"""The column registry of summary.csv and comparison.csv: one entry per column, in file order.

An entry (:class:`Column`) names the column, its ``source`` (the function that computes its
value, from :mod:`scripts.analysis.stats` or :mod:`scripts.analysis.scoring`, wrapped to read the
rows it
needs), its ``caption`` (what the table's caption, ``report/summary.rst`` or
``report/comparison.rst``, says about it) and, when report.html's table shows it, its
``header`` and ``fmt`` (a name of :data:`scripts.analysis.report.FORMATS`). Everything that lists
the
columns reads this module at the time it runs: :mod:`scripts.analysis.tables` computes the rows and
writes the CSV columns in this order, :mod:`scripts.analysis.report` builds its tables and renders
the
captions, and the rules pass :data:`SUMMARY` and :data:`COMPARISON` to the caption templates
(``snakemake.params.columns``). A new statistic is its function in :mod:`scripts.analysis.stats` and
one entry here.

A summary column's source reads a :class:`SystemRuns` (the runs of one benchmark on one
system). A comparison column's source reads, by its ``reads``:

- ``"pair"``: a :class:`Pair` (one system and the reference system);
- ``"table"``: the rows computed so far (one dict per system), returning one value per row
  (the Holm adjustment is over the rows of the table);
- ``"row"``: this row once the pair and table columns are computed (significance, verdict).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from scripts.analysis import stats
from scripts.analysis.scoring import Describe, Score, describe
from scripts.mlperf import power

if TYPE_CHECKING:  # types only: pandas is imported on first use (see _isna)
    import pandas as pd

Reads = Literal["runs", "pair", "table", "row"]


@dataclass(frozen=True)
class Column:
    """One column of a table: its name, what computes it, what the report says about it."""

    name: str
    source: Callable[[Any], Any]
    caption: str = ""  # "" when the table's caption does not list it (names, counts, ids)
    header: str | None = None  # report.html's header; None: report.html does not show it
    fmt: str = "text"  # how report.html formats it (scripts.analysis.report.FORMATS)
    reads: Reads = "runs"  # what ``source`` reads (see the module docstring)


@dataclass(frozen=True)
class Registry:
    """The columns of one table, in file order. Not a tuple on purpose: passed as a rule's
    ``params`` for the caption templates, a value Snakemake cannot represent is left out of its
    params rerun trigger, so the registry never makes a finished table outdated."""

    table: str
    columns: tuple[Column, ...]

    def __iter__(self) -> Iterator[Column]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def __repr__(self) -> str:
        return f"<{len(self.columns)} columns of {self.table} (scripts/analysis/columns.py)>"

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def captioned(self) -> list[Column]:
        """The columns the table's caption lists."""
        return [c for c in self.columns if c.caption]

    def plus(self, *more: Column) -> Registry:
        """This registry with ``more`` columns at the end."""
        return Registry(self.table, (*self.columns, *more))


def nan_to_none(x: Any) -> Any:
    """None for a missing value (None or nan), else ``x``: a table cell without a value."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _isna(value: Any) -> bool:
    """``pandas.isna`` of one value. pandas is imported on first use: it costs about 0.3 s, and
    every snakemake invocation imports this module (the report's captions list the columns)."""
    import pandas as pd  # lazy: see the docstring

    return bool(pd.isna(value))


def optional_floats(column: pd.Series) -> list[float]:
    return [float(x) for x in column if not _isna(x)]


# ---------------------------------------------------------------------------------------------
# summary.csv: one row per system


@dataclass
class SystemRuns:
    """What a summary row is computed from: the runs of one benchmark on one system, sorted by
    run, with the converged runs' usable times (the statistics of time to train use those)."""

    runs: pd.DataFrame  # the rows of runs.csv, sorted by run
    fingerprints: list[str]  # distinct fingerprints (at most one: others are refused)
    bad_log: list[bool]  # per run: its log has problems
    run_numbers: list[int]  # per run
    score: Score  # the MLPerf score (scripts.analysis.scoring.olympic_score)
    times: list[float]  # times to train of the converged runs with a usable time
    time_runs: list[int]  # their run numbers
    converged_rows: pd.DataFrame  # their rows
    resamples: int = stats.BOOTSTRAP_RESAMPLES
    seed: int = stats.BOOTSTRAP_SEED

    @cached_property
    def described(self) -> Describe | None:
        return describe(self.times) if self.times else None

    @cached_property
    def boot_interval(self) -> tuple[float, float]:
        return stats.bootstrap_mean_interval(self.times, resamples=self.resamples, seed=self.seed)

    @cached_property
    def quartiles(self) -> tuple[float, float, float]:
        return stats.quartiles(self.times)

    @cached_property
    def outliers(self) -> tuple[list[int], list[int]]:
        """Positions in ``times`` of the IQR outliers and of the modified z-score outliers."""
        return stats.iqr_outliers(self.times), stats.modified_z_outliers(self.times)

    @cached_property
    def epochs_to_converge(self) -> list[float]:
        """Of the converged runs."""
        if "epochs_to_converge" not in self.runs:
            return []
        return optional_floats(self.converged_rows["epochs_to_converge"])

    @cached_property
    def times_per_epoch(self) -> list[float]:
        """Of every run that logged epochs (throughput does not depend on convergence)."""
        if "time_per_epoch_s" not in self.runs:
            return []
        return optional_floats(self.runs["time_per_epoch_s"])

    def first(self, column: str) -> Any:
        return self.runs[column].iloc[0]


def of_times(statistic: Callable[[list[float]], float]) -> Callable[[SystemRuns], Any]:
    """The source of a column that is ``statistic`` of the converged runs' times: None
    without times, and a nan result is None too."""

    def source(r: SystemRuns) -> Any:
        return nan_to_none(statistic(r.times)) if r.times else None

    source.__doc__ = f"{statistic.__module__}.{statistic.__name__} of the converged times"
    return source


def described(attribute: str) -> Callable[[SystemRuns], Any]:
    """The source of a column of :func:`scripts.analysis.scoring.describe` of the converged
    times."""

    def source(r: SystemRuns) -> Any:
        return nan_to_none(getattr(r.described, attribute)) if r.described else None

    source.__doc__ = f"scripts.analysis.scoring.describe(converged times).{attribute}"
    return source


def if_times(value: Callable[[SystemRuns], Any]) -> Callable[[SystemRuns], Any]:
    """``value`` of the runs, or None without converged times."""
    return lambda r: value(r) if r.times else None


def _dropped(position: int | None, r: SystemRuns) -> int | None:
    return r.run_numbers[position] if position is not None else None


def _outlier_runs(r: SystemRuns) -> str:
    iqr, modz = r.outliers
    return " ".join(str(r.time_runs[i]) for i in sorted(set(iqr) | set(modz)))


def _unstable(r: SystemRuns) -> bool | None:
    cv = stats.coefficient_of_variation(r.times)
    return bool(cv >= stats.UNSTABLE_CV) if not math.isnan(cv) else None


def _n_overlapped(r: SystemRuns) -> int | None:
    """Runs of this system that shared a host with another run while they ran."""
    if "overlapping_runs" not in r.runs:
        return None
    return int((r.runs["overlapping_runs"].fillna(0) > 0).sum())


def published(column: str, kind: Callable[[Any], Any] = str) -> Callable[[SystemRuns], Any]:
    """The source of a column of the published system description (runs.csv's ``column``,
    from run.json's system_json): the first run's value as ``kind``, None without one."""

    def source(r: SystemRuns) -> Any:
        if column not in r.runs:
            return None
        value = nan_to_none(r.first(column))
        return None if value is None or _isna(value) else kind(value)

    source.__doc__ = f"runs.csv's {column} (the published systems/<system>.json)"
    return source


J_PER_KWH = 3.6e6


def energy_score(r: SystemRuns) -> float | None:
    """The MLPerf energy score in joules (:func:`scripts.mlperf.power.olympic_energy_j`, the result
    summarizer's ``_index_olympic_average``): the runs.csv energies of exactly the runs the
    time score averages, in the order of their times, averaged and multiplied by the same
    scaling factor. None without a valid score or when one of those runs has no energy."""
    if not r.score.valid or "energy_j" not in r.runs:
        return None
    position = {run: i for i, run in enumerate(r.run_numbers)}
    energies = [nan_to_none(e) for e in r.runs["energy_j"]]
    counted = [
        (t, position[run], energies[position[run]])
        for t, run in zip(r.times, r.time_runs, strict=True)
        if position[run] not in r.score.dropped
    ]
    return power.olympic_energy_j(counted, r.score.scaling_factor)


def _kwh(r: SystemRuns) -> float | None:
    joules = energy_score(r)
    return joules / J_PER_KWH if joules is not None else None


def _mean_or_none(xs: list[float]) -> float | None:
    return nan_to_none(stats.mean(xs)) if xs else None


C = Column
SUMMARY = Registry(
    "summary.csv",
    (
        C("benchmark", lambda r: r.first("benchmark")),
        C("system", lambda r: r.first("system"), header="system"),
        C(
            "submitter",
            published("submitter"),
            "the submitter of a published result, from the system description in its systems "
            "folder as the MLPerf result summarizer reads it (empty for systems made here)",
        ),
        C("division", published("division"), "its division (closed, open)"),
        C("accelerator", published("accelerator"), "its accelerator model"),
        C(
            "n_accelerators",
            published("n_accelerators", int),
            "its accelerators: accelerators_per_node x number_of_nodes",
        ),
        C("n_nodes", published("n_nodes", int), "its number_of_nodes"),
        C("framework", published("framework"), "its framework"),
        C("n_runs", lambda r: r.score.n_runs, "runs made", "runs", "int"),
        C(
            "n_converged",
            lambda r: r.score.n_converged,
            "runs that reached the target",
            "converged",
            "int",
        ),
        C(
            "n_log_problems",
            lambda r: int(sum(r.bad_log)),
            "runs whose log is not a valid MLPerf log (they count as not converged)",
        ),
        C(
            "valid",
            lambda r: r.score.valid,
            "whether the runs give an MLPerf score",
            "valid",
            "yes",
        ),
        C("reason", lambda r: r.score.reason, "why not, when they do not"),
        C(
            "score_s",
            lambda r: r.score.score_s,
            "the MLPerf score: the olympic mean of the times to train (the fastest and the "
            "slowest run dropped, 4 each for Unet3D; one run that missed the target counts as "
            "the slowest, two make the result invalid), times the RCP scaling factor",
            "MLPerf score (s)",
            "s",
        ),
        C(
            "score_unscaled_s",
            lambda r: r.score.unscaled_s,
            "the olympic mean itself, before the scaling factor",
        ),
        C(
            "rcp_scaling_factor",
            lambda r: r.score.scaling_factor,
            "the RCP scaling factor: a published result folder's (its scaling.json; 1.0 "
            "without one), or for runs made here of an MLPerf benchmark the factor "
            "mlperf-logging's RCP checker gives them (1.0 unless they converge faster than "
            "the reference points allow)",
        ),
        C(
            "rcp",
            lambda r: r.first("rcp") if "rcp" in r.runs else None,
            "the RCP check: published (the folder's scaling.json), pass, scaled (the runs "
            "converged faster than the reference convergence points: the score is multiplied "
            "by the factor), fail (rcp_checker's message in runs.csv's rcp_detail), or not "
            "applicable (not an MLPerf benchmark, or no reference points for it)",
        ),
        C(
            "energy_j",
            energy_score,
            "the MLPerf energy score of a published power result (MLPerf Training v4.0 on), "
            "in joules, as mlperf-logging's result summarizer computes it: each counted run's "
            "energy (per node, the readings integrated over the measurement window times the "
            "conversion efficiency, scaled to the time to train; per switch, its estimate "
            "times the time to train) averaged over exactly the runs the MLPerf score "
            "averages, times the same RCP scaling factor (empty without power results)",
        ),
        C("energy_kwh", _kwh, "the same in kWh (J / 3.6e6)", "energy (kWh)", "num"),
        C("mean_s", described("mean_s"), "mean time to train", "mean (s)", "s"),
        C("std_s", described("std_s"), "standard deviation (ddof=1)", "std (s)", "s"),
        C("cv", described("cv"), "coefficient of variation, std / mean", "cv", "pct"),
        C("sem_s", of_times(stats.sem), "standard error of the mean, std / sqrt(n)"),
        C(
            "ci95_low_s",
            described("ci95_low_s"),
            "low end of the Student-t 95% interval of the mean",
            "t 95% CI low",
            "s",
        ),
        C(
            "ci95_high_s",
            described("ci95_high_s"),
            "its high end",
            "t 95% CI high",
            "s",
        ),
        C(
            "boot_ci95_low_s",
            if_times(lambda r: nan_to_none(r.boot_interval[0])),
            "low end of the seeded percentile-bootstrap 95% interval of the mean",
            "bootstrap low",
            "s",
        ),
        C(
            "boot_ci95_high_s",
            if_times(lambda r: nan_to_none(r.boot_interval[1])),
            "its high end",
            "bootstrap high",
            "s",
        ),
        C("median_s", described("median_s"), "median", "median (s)", "s"),
        C("mad_s", of_times(stats.mad), "median absolute deviation (unscaled)", "MAD (s)", "s"),
        C(
            "q1_s",
            if_times(lambda r: r.quartiles[0]),
            "first quartile (linear interpolation)",
            "q1 (s)",
            "s",
        ),
        C("q3_s", if_times(lambda r: r.quartiles[2]), "third quartile", "q3 (s)", "s"),
        C("min_s", described("min_s"), "fastest converged run", "min (s)", "s"),
        C("max_s", described("max_s"), "slowest converged run", "max (s)", "s"),
        C(
            "n_outliers_iqr",
            if_times(lambda r: len(r.outliers[0])),
            f"runs outside {stats.IQR_K} IQR of the quartiles (Tukey's fences)",
        ),
        C(
            "n_outliers_modz",
            if_times(lambda r: len(r.outliers[1])),
            f"runs with a modified z-score above {stats.MODIFIED_Z_THRESHOLD}",
        ),
        C(
            "outlier_runs",
            if_times(_outlier_runs),
            "the run numbers of both kinds of outliers: flagged, never dropped",
            "outlier runs",
        ),
        C(
            "unstable",
            if_times(_unstable),
            f"whether cv >= {stats.UNSTABLE_CV:.0%}",
            "unstable",
            "yes",
        ),
        C(
            "runs_for_5pct_ci",
            if_times(lambda r: stats.runs_for_relative_ci(r.times, 0.05)),
            "the runs a +/-5% interval of the mean would need",
            "runs for +/-5%",
            "int",
        ),
        C(
            "epochs_to_converge_mean",
            lambda r: _mean_or_none(r.epochs_to_converge),
            "mean epochs to converge: the seed-dependent part of a comparison",
            "epochs (mean)",
            "num",
        ),
        C(
            "epochs_to_converge_std",
            lambda r: nan_to_none(stats.std(r.epochs_to_converge)),
            "their standard deviation",
            "epochs (std)",
            "num",
        ),
        C(
            "time_per_epoch_mean_s",
            lambda r: _mean_or_none(r.times_per_epoch),
            "mean time per epoch of every run that logged epochs: throughput, the "
            "low-variance part of a comparison",
            "s per epoch",
            "s",
        ),
        C(
            "time_per_epoch_cv",
            lambda r: nan_to_none(stats.coefficient_of_variation(r.times_per_epoch)),
            "its coefficient of variation",
            "cv per epoch",
            "pct",
        ),
        C(
            "dropped_fastest_run",
            lambda r: _dropped(r.score.dropped_fastest, r),
            "the run the MLPerf score drops as the fastest",
        ),
        C(
            "dropped_slowest_run",
            lambda r: _dropped(r.score.dropped_slowest, r),
            "the run it drops as the slowest",
        ),
        C(
            "n_overlapped",
            _n_overlapped,
            "runs that shared a host with another run while they ran",
        ),
        C("scale", lambda r: r.first("scale")),
        C("fingerprint", lambda r: r.fingerprints[0] if r.fingerprints else None),
    ),
)


# ---------------------------------------------------------------------------------------------
# comparison.csv: one row per system other than the reference


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
        return not (_isna(score) or _isna(ref_score)) if score is not None else False

    def score_if_both(self, summary: Mapping[str, Any]) -> Any:
        return summary.get("score_s") if self.both_scores else None


def ratio(numerator: Any, denominator: Any) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or _isna(numerator) or _isna(denominator):
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
