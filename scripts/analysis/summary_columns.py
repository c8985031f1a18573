"""The columns of summary.csv (one row per system), in file order: the registry :data:`SUMMARY`.

Each column's source reads a :class:`SystemRuns` (the runs of one benchmark on one system, as
:func:`scripts.analysis.summary_table.system_runs` selects them) and returns the cell's value;
None is an empty cell. What an entry holds is :class:`scripts.analysis.columns.Column`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from scripts.analysis import stats
from scripts.analysis.columns import Column, Registry, isna, nan_to_none, optional_floats
from scripts.analysis.scoring import Describe, Score, describe
from scripts.analysis.windows import Windows, format_scores
from scripts.mlperf import power

if TYPE_CHECKING:  # types only: pandas is imported on first use (scripts.analysis.columns.isna)
    import pandas as pd


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
    windows: Windows | None = None  # the M-of-N windows (scripts.analysis.windows), if any

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
        return None if value is None or isna(value) else kind(value)

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
            "the MLPerf energy score (the energy to train) of a published power result "
            "(MLPerf Training v4.0 on) or of the power logs a system's power source wrote "
            "beside its runs (power.source command, or nvml: the GPUs only; runs.csv's "
            "power_source), in joules, as mlperf-logging's result summarizer computes it: "
            "each counted run's "
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
WINDOW = (
    C(
        "window_first_run",
        lambda r: r.windows.chosen_first_run if r.windows else None,
        "the M-of-N protocol (statistics.window or the benchmark's window: N, with M >= N "
        "runs): the first run of the window score_s comes from, the median of every window of "
        "N consecutive runs in run order (for an even number of windows the lower median, the "
        "faster middle one; equal scores: the earlier window)",
        "median window from run",
        "int",
    ),
    C(
        "window_scores",
        lambda r: format_scores(r.windows.values) if r.windows else None,
        "every window's olympic score in seconds, in run order (first window first), space-"
        "separated; inf for a window with more runs that missed the target than may be dropped",
    ),
)
del C


def registry(window: int | None) -> Registry:
    """summary.csv's columns: :data:`SUMMARY`, and with the M-of-N protocol (``window`` not
    None) :data:`WINDOW` after them. Without a window the file is what it was before the
    protocol existed, byte for byte."""
    return SUMMARY if window is None else SUMMARY.plus(*WINDOW)
