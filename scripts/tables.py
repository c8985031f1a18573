"""From raw run logs to the campaign's tables: result.json per run, runs.csv, summary.csv.

- ``parse``: one run's ``mlperf.log`` (+ the runner's ``run.json``) -> ``result.json``, by hand
  (a run's own job writes it through :mod:`scripts.result_json`).
- ``collect``: every ``result.json`` of a benchmark -> ``runs.csv`` (one row per run).
- ``summarize``: ``runs.csv`` -> ``summary.csv`` (one row per system): the MLPerf score
  (olympic mean, :func:`scripts.scoring.olympic_score`) and statistics of the converged runs'
  times to train (:func:`scripts.scoring.describe` and :mod:`scripts.stats`).
- ``compare``: ``runs.csv`` + ``summary.csv`` -> ``comparison.csv``: every system against the
  reference system (speedup with a bootstrap interval, tests, minimum detectable difference).
- ``evals``: every ``result.json`` -> ``evals.csv`` (one row per evaluation: the convergence
  curves).

Aggregation refuses to mix runs of one system whose fingerprints differ (different dataset,
target, command, hyper-parameters or environment): such runs are not comparable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from scripts import formats, stats
from scripts.formats import CorruptFile, NewerFormat, read_json
from scripts.hashing import write_atomic, write_json
from scripts.result_json import parse_run
from scripts.scoring import describe, olympic_score, usable_time

RUN_COLUMNS = [
    "benchmark",
    "system",
    "run",
    "seed",
    "started_utc",
    "time_to_train_s",
    "converged",
    "status",
    "log_problems",
    "epochs",
    "epochs_to_converge",
    "time_per_epoch_s",
    "final_quality",
    "quality_target",
    "result_line_wall_s",
    "runner_wall_s",
    "host",
    "gpu_devices",
    "slurm_job_id",
    "overlapping_runs",
    "scale",
    "fingerprint",
]
SUMMARY_COLUMNS = [
    "benchmark",
    "system",
    "n_runs",
    "n_converged",
    "n_log_problems",
    "valid",
    "reason",
    "score_s",
    "mean_s",
    "std_s",
    "cv",
    "sem_s",
    "ci95_low_s",
    "ci95_high_s",
    "boot_ci95_low_s",
    "boot_ci95_high_s",
    "median_s",
    "mad_s",
    "q1_s",
    "q3_s",
    "min_s",
    "max_s",
    "n_outliers_iqr",
    "n_outliers_modz",
    "outlier_runs",
    "unstable",
    "runs_for_5pct_ci",
    "epochs_to_converge_mean",
    "epochs_to_converge_std",
    "time_per_epoch_mean_s",
    "time_per_epoch_cv",
    "dropped_fastest_run",
    "dropped_slowest_run",
    "n_overlapped",
    "scale",
    "fingerprint",
]
COMPARISON_COLUMNS = [
    "benchmark",
    "system",
    "reference",
    "n",
    "n_reference",
    "mean_s",
    "reference_mean_s",
    "speedup",
    "speedup_ci95_low",
    "speedup_ci95_high",
    "score_s",
    "reference_score_s",
    "score_speedup",
    "epoch_speedup",
    "p_welch",
    "p_welch_holm",
    "p_mannwhitney",
    "p_mannwhitney_holm",
    "prob_faster",
    "min_effect",
    "significant",
    "mdd_s",
    "mdd_rel",
    "verdict",
]
# 10 significant digits: times from logs have millisecond resolution, so a score such as
# 1233.20325 s must not be rounded
FLOAT_FORMAT = "%.10g"
EVAL_COLUMNS = ["benchmark", "system", "run", "epoch", "quality", "time_s", "converged"]


class AggregationError(RuntimeError):
    pass


def _interval(result: Mapping[str, Any]) -> tuple[float, float] | None:
    """(start, end) in epoch seconds of a run's (last) attempt, from the runner's record."""
    start, wall = result.get("started_utc"), result.get("runner_wall_s")
    if not start or wall is None:
        return None
    t0 = dt.datetime.fromisoformat(start).timestamp()
    return t0, t0 + float(wall)


def overlapping_runs(results: Sequence[Mapping[str, Any]]) -> list[int]:
    """For each run, how many other runs were executing at the same time on a host it used
    (concurrent runs on one machine disturb each other's times; runs on different nodes of a
    cluster do not count)."""
    spans = [_interval(r) for r in results]
    hosts = [set(r.get("hosts") or [r.get("host")]) for r in results]
    counts = []
    for i, span in enumerate(spans):
        n = 0
        for j, other in enumerate(spans):
            if i == j or span is None or other is None or not hosts[i] & hosts[j]:
                continue
            if span[0] < other[1] and other[0] < span[1]:
                n += 1
        counts.append(n)
    return counts


LOG_PROBLEMS_SEP = "; "


def log_problems_cell(result: Mapping[str, Any]) -> str:
    """runs.csv's log_problems of one result: "" when the log is valid, else every problem,
    joined by "; " (a result.json written before log_problems existed has none)."""
    return LOG_PROBLEMS_SEP.join(str(p) for p in result.get("log_problems") or [])


def names_log_problems(cell: Any) -> bool:
    """Whether a log_problems cell of runs.csv names a problem (an empty cell reads back as
    NaN)."""
    return isinstance(cell, str) and cell.strip() != ""


def has_log_problems(runs: pd.DataFrame) -> pd.Series:
    """Per row of runs.csv, whether its log has problems."""
    if "log_problems" not in runs:
        return pd.Series(False, index=runs.index)
    return pd.Series([names_log_problems(x) for x in runs["log_problems"]], index=runs.index)


def collect(result_files: Sequence[Path]) -> pd.DataFrame:
    results = [read_json(Path(f), "result.json") for f in result_files]  # a corrupt one is named
    rows = [
        {
            **r,
            "gpu_devices": ",".join(r.get("gpu_devices") or []),
            "overlapping_runs": n,
            "log_problems": log_problems_cell(r),
        }
        for r, n in zip(results, overlapping_runs(results), strict=True)
    ]
    frame = pd.DataFrame(rows, columns=RUN_COLUMNS)
    return frame.sort_values(["system", "run"], kind="stable").reset_index(drop=True)


def _nan_to_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _optional_floats(column: pd.Series) -> list[float]:
    return [float(x) for x in column if not pd.isna(x)]


def summarize_system(
    runs: pd.DataFrame,
    max_nonconverged: int = 1,
    *,
    resamples: int = stats.BOOTSTRAP_RESAMPLES,
    seed: int = stats.BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """One summary row from the runs of one benchmark on one system.

    The MLPerf score uses every run (one non-converged run is dropped as the slowest); the
    statistics of time to train use the converged runs; epochs to converge use the converged
    runs, time per epoch every run that logged epochs (throughput does not depend on
    convergence). The bootstrap interval uses ``resamples`` and ``seed``
    (:func:`scripts.stats.bootstrap_mean_interval`). Outliers are counted and named, never
    dropped."""
    runs = runs.sort_values("run", kind="stable")
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
    times = [None if pd.isna(t) else float(t) for t in runs["time_to_train_s"]]
    bad_log = has_log_problems(runs).tolist()
    # a run whose log has problems has no result, whatever its row says (olympic_score drops
    # times that are not usable the same way)
    converged = [bool(c) and not b for c, b in zip(runs["converged"], bad_log, strict=True)]
    run_numbers = runs["run"].tolist()
    score = olympic_score(times, converged, max_nonconverged=max_nonconverged, labels=run_numbers)
    ok = [
        (t, r)
        for t, c, r in zip(times, converged, run_numbers, strict=True)
        if c and usable_time(t)
    ]
    ok_times = [t for t, _ in ok]
    ok_runs = [r for _, r in ok]
    described = describe(ok_times) if ok_times else None
    row: dict[str, Any] = {
        "benchmark": runs["benchmark"].iloc[0],
        "system": runs["system"].iloc[0],
        "n_runs": score.n_runs,
        "n_converged": score.n_converged,
        "n_log_problems": int(sum(bad_log)),
        "valid": score.valid,
        "reason": score.reason,
        "score_s": score.score_s,
        "dropped_fastest_run": (
            run_numbers[score.dropped_fastest] if score.dropped_fastest is not None else None
        ),
        "dropped_slowest_run": (
            run_numbers[score.dropped_slowest] if score.dropped_slowest is not None else None
        ),
        "scale": runs["scale"].iloc[0],
        "fingerprint": fingerprints[0] if fingerprints else None,
        # runs of this system that shared a host with another run while they ran
        "n_overlapped": (
            int((runs["overlapping_runs"].fillna(0) > 0).sum())
            if "overlapping_runs" in runs
            else None
        ),
    }
    for col in ("mean_s", "std_s", "cv", "min_s", "median_s", "max_s", "ci95_low_s", "ci95_high_s"):
        row[col] = _nan_to_none(getattr(described, col)) if described else None
    row.update(_spread(ok_times, ok_runs, resamples=resamples, seed=seed))
    conv = runs[[c and usable_time(t) for c, t in zip(converged, times, strict=True)]]
    epochs = _optional_floats(conv["epochs_to_converge"]) if "epochs_to_converge" in runs else []
    per_epoch = _optional_floats(runs["time_per_epoch_s"]) if "time_per_epoch_s" in runs else []
    row["epochs_to_converge_mean"] = _nan_to_none(stats.mean(epochs)) if epochs else None
    row["epochs_to_converge_std"] = _nan_to_none(stats.std(epochs))
    row["time_per_epoch_mean_s"] = _nan_to_none(stats.mean(per_epoch)) if per_epoch else None
    row["time_per_epoch_cv"] = _nan_to_none(stats.coefficient_of_variation(per_epoch))
    return row


def _spread(
    times: list[float], run_numbers: list[int], *, resamples: int, seed: int
) -> dict[str, Any]:
    """The summary columns beyond :func:`scripts.scoring.describe` (None without values)."""
    if not times:
        return {
            k: None
            for k in (
                "sem_s",
                "boot_ci95_low_s",
                "boot_ci95_high_s",
                "mad_s",
                "q1_s",
                "q3_s",
                "n_outliers_iqr",
                "n_outliers_modz",
                "outlier_runs",
                "unstable",
                "runs_for_5pct_ci",
            )
        }
    q1, _, q3 = stats.quartiles(times)
    boot_lo, boot_hi = stats.bootstrap_mean_interval(times, resamples=resamples, seed=seed)
    iqr = stats.iqr_outliers(times)
    modz = stats.modified_z_outliers(times)
    cv = stats.coefficient_of_variation(times)
    return {
        "sem_s": _nan_to_none(stats.sem(times)),
        "boot_ci95_low_s": _nan_to_none(boot_lo),
        "boot_ci95_high_s": _nan_to_none(boot_hi),
        "mad_s": _nan_to_none(stats.mad(times)),
        "q1_s": q1,
        "q3_s": q3,
        "n_outliers_iqr": len(iqr),
        "n_outliers_modz": len(modz),
        "outlier_runs": " ".join(str(run_numbers[i]) for i in sorted(set(iqr) | set(modz))),
        "unstable": bool(cv >= stats.UNSTABLE_CV) if not math.isnan(cv) else None,
        "runs_for_5pct_ci": stats.runs_for_relative_ci(times, 0.05),
    }


def summarize(
    runs: pd.DataFrame,
    max_nonconverged: int = 1,
    *,
    resamples: int = stats.BOOTSTRAP_RESAMPLES,
    seed: int = stats.BOOTSTRAP_SEED,
) -> pd.DataFrame:
    rows = [
        summarize_system(g, max_nonconverged, resamples=resamples, seed=seed)
        for _, g in runs.groupby("system", sort=True)
    ]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


# ---------------------------------------------------------------------------------------------
# Comparison of systems


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


def _ratio(numerator: Any, denominator: Any) -> float | None:
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or pd.isna(numerator) or pd.isna(denominator):
        return None
    return float(numerator) / float(denominator) if float(denominator) else None


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
      (:func:`scripts.stats.speedup`), with a percentile bootstrap 95% interval
      (:func:`scripts.stats.bootstrap_speedup_interval`, ``resamples``, ``seed``);
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
      (:func:`scripts.stats.min_detectable_difference`), in seconds and as a fraction of the
      reference mean.
    """
    systems = sorted(set(runs["system"])) if len(runs) else []
    ref, _ = choose_reference(systems, reference)
    rows: list[dict[str, Any]] = []
    if ref is None:
        return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    scores = {r["system"]: r for r in summary.to_dict("records")}
    ref_times = converged_times(runs, ref)
    ref_score = scores.get(ref, {}).get("score_s")
    for system in systems:
        if system == ref:
            continue
        times = converged_times(runs, system)
        lo, hi = stats.bootstrap_speedup_interval(ref_times, times, resamples=resamples, seed=seed)
        score = scores.get(system, {}).get("score_s")
        both_scores = not (pd.isna(score) or pd.isna(ref_score)) if score is not None else False
        mdd = stats.min_detectable_difference(times, ref_times)
        ref_mean = stats.mean(ref_times)
        rows.append(
            {
                "benchmark": runs["benchmark"].iloc[0],
                "system": system,
                "reference": ref,
                "n": len(times),
                "n_reference": len(ref_times),
                "mean_s": stats.mean(times),
                "reference_mean_s": ref_mean,
                "speedup": stats.speedup(ref_times, times),
                "speedup_ci95_low": lo,
                "speedup_ci95_high": hi,
                "score_s": score if both_scores else None,
                "reference_score_s": ref_score if both_scores else None,
                "score_speedup": float(ref_score) / float(score) if both_scores else None,
                "epoch_speedup": _ratio(
                    scores.get(ref, {}).get("time_per_epoch_mean_s"),
                    scores.get(system, {}).get("time_per_epoch_mean_s"),
                ),
                "p_welch": stats.welch_p(times, ref_times),
                "p_mannwhitney": stats.mann_whitney_p(times, ref_times),
                "prob_faster": stats.prob_faster(times, ref_times),
                "min_effect": min_effect,
                "mdd_s": mdd,
                "mdd_rel": mdd / ref_mean if ref_times and ref_mean else float("nan"),
            }
        )
    welch_holm = stats.holm([r["p_welch"] for r in rows])
    mw_holm = stats.holm([r["p_mannwhitney"] for r in rows])
    for row, pw, pm in zip(rows, welch_holm, mw_holm, strict=True):
        row["p_welch_holm"], row["p_mannwhitney_holm"] = pw, pm
        lo, hi = row["speedup_ci95_low"], row["speedup_ci95_high"]
        excludes = not math.isnan(lo) and (lo > 1 + min_effect or hi < 1 / (1 + min_effect))
        tested = not math.isnan(pw) and pw < stats.ALPHA
        row["significant"] = bool(excludes and tested)
        row["verdict"] = verdict(row)
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def eval_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per evaluation of one run (from its result.json's eval_history)."""
    return [
        {
            "benchmark": result["benchmark"],
            "system": result["system"],
            "run": result["run"],
            "epoch": epoch,
            "quality": quality,
            "time_s": since,
            "converged": result.get("converged"),
        }
        for epoch, quality, since in result.get("eval_history") or []
    ]


def summarize_partial(
    runs: pd.DataFrame, expected: Mapping[str, int], max_nonconverged: int = 1
) -> pd.DataFrame:
    """Like :func:`summarize` over the runs finished so far, marked ``partial`` per system.

    ``expected`` maps each system of the campaign to its number of runs; a system with no
    finished run yet gets a row with n_runs 0.
    """
    rows = []
    for system, n_expected in sorted(expected.items()):
        mine = runs[runs["system"] == system] if len(runs) else runs
        if len(mine):
            row = summarize_system(mine, max_nonconverged)
        else:
            row = {c: None for c in SUMMARY_COLUMNS} | {
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
    frame = pd.DataFrame(rows, columns=["partial", "n_expected", *SUMMARY_COLUMNS])
    if len(runs):
        frame["benchmark"] = runs["benchmark"].iloc[0]
    return frame


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Parse runs and aggregate them into tables.")
    sub = p.add_subparsers(dest="cmd", required=True)
    pa = sub.add_parser("parse", help="mlperf.log + run.json -> result.json")
    pa.add_argument("--log", type=Path, required=True)
    pa.add_argument("--meta", type=Path, required=True)
    pa.add_argument("--quality-json", required=True, help="the benchmark's quality as JSON")
    pa.add_argument(
        "--time-to-train",
        choices=["run_stop", "eval_result"],
        default="run_stop",
        help="where time to train comes from (the benchmark's log.time_to_train)",
    )
    pa.add_argument("--output", type=Path, required=True)
    co = sub.add_parser("collect", help="result.json files -> runs.csv")
    co.add_argument("--output", type=Path, required=True)
    co.add_argument("results", type=Path, nargs="+")
    su = sub.add_parser("summarize", help="runs.csv -> summary.csv")
    su.add_argument("--runs", type=Path, required=True)
    su.add_argument("--max-nonconverged", type=int, default=1)
    su.add_argument("--bootstrap-resamples", type=int, default=stats.BOOTSTRAP_RESAMPLES)
    su.add_argument("--bootstrap-seed", type=int, default=stats.BOOTSTRAP_SEED)
    su.add_argument("--output", type=Path, required=True)
    cm = sub.add_parser("compare", help="runs.csv + summary.csv -> comparison.csv")
    cm.add_argument("--runs", type=Path, required=True)
    cm.add_argument("--summary", type=Path, required=True)
    cm.add_argument("--reference", default=None, help="the reference system")
    cm.add_argument("--min-effect", type=float, default=0.0)
    cm.add_argument("--bootstrap-resamples", type=int, default=stats.BOOTSTRAP_RESAMPLES)
    cm.add_argument("--bootstrap-seed", type=int, default=stats.BOOTSTRAP_SEED)
    cm.add_argument("--output", type=Path, required=True)
    ev = sub.add_parser("evals", help="result.json files -> evals.csv")
    ev.add_argument("--output", type=Path, required=True)
    ev.add_argument("results", type=Path, nargs="+")
    pt = sub.add_parser("partial", help="finished result.json files -> summary.partial.csv")
    pt.add_argument("--expected-json", required=True, help='{"system": n_runs, ...}')
    pt.add_argument("--max-nonconverged", type=int, default=1)
    pt.add_argument("--output", type=Path, required=True)
    pt.add_argument("results", type=Path, nargs="*")
    args = p.parse_args(argv)
    if args.cmd == "partial":
        frame = collect(args.results) if args.results else pd.DataFrame(columns=RUN_COLUMNS)
        table = summarize_partial(frame, json.loads(args.expected_json), args.max_nonconverged)
        write_atomic(args.output, table.to_csv(index=False, float_format=FLOAT_FORMAT))
        print(
            table.to_string(
                index=False,
                columns=["system", "partial", "n_runs", "n_expected", "score_s", "mean_s"],
            )
        )
        return 0
    if args.cmd == "parse":
        meta = formats.read_json(args.meta, "run.json")
        quality = json.loads(args.quality_json)
        parsed = parse_run(args.log, meta, quality, args.time_to_train)
        result = formats.stamped("result.json", parsed)
        write_json(args.output, result)
        state = "converged" if result["converged"] else "did NOT converge"
        print(f"run {result['run']}: {state}, time to train {result['time_to_train_s']} s")
    elif args.cmd == "collect":
        write_atomic(args.output, collect(args.results).to_csv(index=False))
    elif args.cmd == "evals":
        rows = [r for f in args.results for r in eval_rows(read_json(Path(f), "result.json"))]
        write_atomic(args.output, pd.DataFrame(rows, columns=EVAL_COLUMNS).to_csv(index=False))
    elif args.cmd == "compare":
        runs = pd.read_csv(args.runs)
        table = compare(
            runs,
            pd.read_csv(args.summary),
            args.reference,
            min_effect=args.min_effect,
            resamples=args.bootstrap_resamples,
            seed=args.bootstrap_seed,
        )
        _, note = choose_reference(sorted(set(runs["system"])), args.reference)
        write_atomic(args.output, table.to_csv(index=False, float_format=FLOAT_FORMAT))
        print(note or f"reference system: {args.reference}")
        print("\n".join(table["verdict"]) or "one system: nothing to compare")
    else:
        try:
            table = summarize(
                pd.read_csv(args.runs),
                args.max_nonconverged,
                resamples=args.bootstrap_resamples,
                seed=args.bootstrap_seed,
            )
        except AggregationError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        write_atomic(args.output, table.to_csv(index=False, float_format=FLOAT_FORMAT))
        print(
            table.to_string(
                index=False,
                columns=["system", "n_runs", "n_converged", "valid", "score_s", "mean_s", "cv"],
            )
        )
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except (CorruptFile, NewerFormat) as exc:  # e.g. a half-written result.json: named
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
