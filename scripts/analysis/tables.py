"""From raw run logs to the campaign's tables: result.json per run, runs.csv, summary.csv.

- ``parse``: one run's ``mlperf.log`` (+ the runner's ``run.json``) -> ``result.json``, by hand
  (a run's own job writes it through :mod:`scripts.run.result_json`).
- ``collect``: every ``result.json`` of a benchmark -> ``runs.csv`` (one row per run).
- ``summarize``: ``runs.csv`` -> ``summary.csv`` (one row per system): the MLPerf score
  (olympic mean, :func:`scripts.analysis.scoring.olympic_score`) and statistics of the converged
  runs'
  times to train (:func:`scripts.analysis.scoring.describe` and :mod:`scripts.analysis.stats`).
- ``compare``: ``runs.csv`` + ``summary.csv`` -> ``comparison.csv``: every system against the
  reference system (speedup with a bootstrap interval, tests, minimum detectable difference).
- ``evals``: every ``result.json`` -> ``evals.csv`` (one row per evaluation: the convergence
  curves).
- ``partial``: the finished runs' ``result.json`` -> ``summary.partial.csv`` (the summary so
  far, each system marked partial).

The columns of summary.csv and comparison.csv, and the function that computes each, are the
registry :mod:`scripts.analysis.columns`; this module selects the runs each row is computed from.

Aggregation refuses to mix runs of one system whose fingerprints differ (different dataset,
target, command, hyper-parameters or environment): such runs are not comparable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from scripts.analysis import columns, stats
from scripts.analysis.scoring import olympic_score, usable_time
from scripts.core import formats
from scripts.core.formats import CorruptFile, NewerFormat, read_json
from scripts.core.hashing import write_json
from scripts.core.safe_csv import read_csv, write_csv
from scripts.mlperf import compliance
from scripts.run.import_logs import SYSTEM_COLUMNS
from scripts.run.result_json import compliance_of, parse_run, verdict_of

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
    # the round's compliance checker (result.json; "not applicable" for a non-MLPerf benchmark)
    "compliance",
    "compliance_detail",
    "epochs",
    "epochs_to_converge",
    "time_per_epoch_s",
    "final_quality",
    "quality_target",
    "result_line_wall_s",
    "runner_wall_s",
    "host",
    # what the run measured under: its dataset's page cache just before it started, and the
    # others' CPU (cores) and the load average while it trained (result.json; empty before)
    "cache",
    "dataset_resident",
    "host_busy",
    "load_1m",
    "gpu_devices",
    "slurm_job_id",
    "overlapping_runs",
    "scale",
    "fingerprint",
    # how the result is scored: a published folder's scaling.json factor (run.json), or for
    # runs made here of an MLPerf benchmark the factor of mlperf-logging's RCP checker on them
    "rcp_scaling_factor",
    "rcp",
    "rcp_detail",
    "olympic_drop",
    # a published power result's energy (result.json, scripts/mlperf/power.py; empty without one)
    # and the power rules it breaks (named, never a log problem: convergence is unchanged)
    "energy_j",
    "power_problems",
    # the published systems/<system>.json (run.json's system_json; empty for runs made here)
    *SYSTEM_COLUMNS,
]
# The columns of summary.csv and comparison.csv, in file order: their registry
# (scripts/analysis/columns.py) computes and describes them; these names are what it held at import.
SUMMARY_COLUMNS = columns.SUMMARY.names
COMPARISON_COLUMNS = columns.COMPARISON.names
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


def run_provenance(result_file: Path) -> dict[str, Any]:
    """What the run.json beside a result.json says about scoring and the published system:
    ``published`` (an imported run), ``rcp_scaling_factor`` (1.0 without one: a run made
    here), ``olympic_drop`` (1) and the
    system columns of its ``system_json`` (None each)."""
    meta_path = Path(result_file).with_name("run.json")
    meta = read_json(meta_path, "run.json") if meta_path.is_file() else {}
    system = meta.get("system_json") or {}
    return {
        # a published run: its folder's factor (1.0 without scaling.json) is in run.json
        "published": "rcp_scaling_factor" in meta,
        "rcp_scaling_factor": float(meta.get("rcp_scaling_factor", 1.0)),
        "olympic_drop": int(meta.get("olympic_drop", 1)),
        **{c: system.get(c) for c in SYSTEM_COLUMNS},
    }


def own_rcp(
    results: Sequence[Mapping[str, Any]], provenance: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """Per system whose runs were made here (no published factor in run.json) and whose
    benchmark is MLPerf's (result.json's compliance_ruleset): mlperf-logging's RCP checker on
    its runs' logs (:func:`scripts.mlperf.compliance.rcp_verdict`): pass, scaled by a factor,
    fail."""
    logs: dict[str, list[str]] = {}
    rulesets: dict[str, str] = {}
    for r, p in zip(results, provenance, strict=True):
        if p["published"] or not r.get("compliance_ruleset") or not r.get("log"):
            continue
        logs.setdefault(r["system"], []).append(str(r["log"]))
        rulesets[r["system"]] = str(r["compliance_ruleset"])
    return {s: compliance.rcp_verdict(logs[s], ruleset=rulesets[s]) for s in sorted(logs)}


def _rcp_cells(system: str, published: bool, verdicts: Mapping[str, Any]) -> dict[str, Any]:
    if published:
        return {"rcp": "published", "rcp_detail": "the folder's scaling.json (1.0 without one)"}
    verdict = verdicts.get(system)
    if verdict is None:
        return {"rcp": compliance.NOT_APPLICABLE, "rcp_detail": "not an MLPerf benchmark"}
    cells = {"rcp": verdict.status, "rcp_detail": verdict.detail}
    if verdict.status == "scaled" and verdict.factor is not None:
        cells["rcp_scaling_factor"] = float(verdict.factor)
    return cells


def collect(result_files: Sequence[Path]) -> pd.DataFrame:
    """runs.csv: one row per result.json (with :func:`run_provenance` of its run.json, and
    :func:`own_rcp` for the runs made here of an MLPerf benchmark)."""
    results = [read_json(Path(f), "result.json") for f in result_files]  # a corrupt one is named
    provenance = [run_provenance(Path(f)) for f in result_files]
    verdicts = own_rcp(results, provenance)
    rows = []
    for r, p, n in zip(results, provenance, overlapping_runs(results), strict=True):
        row = {
            **r,
            "gpu_devices": ",".join(r.get("gpu_devices") or []),
            "overlapping_runs": n,
            "log_problems": log_problems_cell(r),
            "power_problems": LOG_PROBLEMS_SEP.join(map(str, r.get("power_problems") or [])),
            **dict(zip(("compliance", "compliance_detail"), compliance_of(r), strict=True)),
            **{k: v for k, v in p.items() if k != "published"},
        }
        row.update(_rcp_cells(r["system"], p["published"], verdicts))
        rows.append(row)
    frame = pd.DataFrame(rows, columns=RUN_COLUMNS)
    return frame.sort_values(["system", "run"], kind="stable").reset_index(drop=True)


def summarize_system(
    runs: pd.DataFrame,
    max_nonconverged: int = 1,
    *,
    resamples: int = stats.BOOTSTRAP_RESAMPLES,
    seed: int = stats.BOOTSTRAP_SEED,
    olympic_drop: int | None = None,
) -> dict[str, Any]:
    """One summary row from the runs of one benchmark on one system: every column of
    :data:`scripts.analysis.columns.SUMMARY`, from the runs as :func:`system_runs` reads them."""
    system = system_runs(
        runs, max_nonconverged, resamples=resamples, seed=seed, olympic_drop=olympic_drop
    )
    return {c.name: c.source(system) for c in columns.SUMMARY}


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
) -> columns.SystemRuns:
    """The runs of one benchmark on one system, as the summary columns read them.

    The MLPerf score uses every run (one non-converged run is dropped as the slowest); the
    statistics of time to train use the converged runs; epochs to converge use the converged
    runs, time per epoch every run that logged epochs (throughput does not depend on
    convergence). The bootstrap interval uses ``resamples`` and ``seed``
    (:func:`scripts.analysis.stats.bootstrap_mean_interval`). Outliers are counted and named, never
    dropped. The score drops :func:`scoring_of`'s olympic drop at each end and is multiplied
    by its scaling factor, as mlperf-logging's result summarizer does; with a drop above 1
    (Unet3D: 4) as many runs may miss the target (the summarizer's ``max_dropped_scores``),
    with 1, ``max_nonconverged``. Raises AggregationError when the runs' fingerprints (or
    scaling factors) differ."""
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
    drop, factor = scoring_of(runs, olympic_drop, max_nonconverged)
    score = olympic_score(
        times,
        converged,
        max_nonconverged=drop if drop > 1 else min(max_nonconverged, drop),
        labels=run_numbers,
        drop=drop,
        scaling_factor=factor,
    )
    ok = [c and usable_time(t) for c, t in zip(converged, times, strict=True)]
    return columns.SystemRuns(
        runs=runs,
        fingerprints=fingerprints,
        bad_log=bad_log,
        run_numbers=run_numbers,
        score=score,
        times=[t for t, k in zip(times, ok, strict=True) if k],
        time_runs=[r for r, k in zip(run_numbers, ok, strict=True) if k],
        converged_rows=runs[ok],
        resamples=resamples,
        seed=seed,
    )


def summarize(
    runs: pd.DataFrame,
    max_nonconverged: int = 1,
    *,
    resamples: int = stats.BOOTSTRAP_RESAMPLES,
    seed: int = stats.BOOTSTRAP_SEED,
    olympic_drop: int | None = None,
) -> pd.DataFrame:
    rows = [
        summarize_system(
            g, max_nonconverged, resamples=resamples, seed=seed, olympic_drop=olympic_drop
        )
        for _, g in runs.groupby("system", sort=True)
    ]
    return pd.DataFrame(rows, columns=columns.SUMMARY.names)


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
      (:func:`scripts.analysis.stats.min_detectable_difference`), in seconds and as a fraction of
      the
      reference mean.
    """
    systems = sorted(set(runs["system"])) if len(runs) else []
    ref, _ = choose_reference(systems, reference)
    registry = columns.COMPARISON
    if ref is None:
        return pd.DataFrame([], columns=registry.names)
    summaries = {r["system"]: r for r in summary.to_dict("records")}
    pairs = [
        columns.Pair(
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
    pairs: Sequence[columns.Pair], registry: columns.Registry
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
    summary_columns = columns.SUMMARY.names
    for system, n_expected in sorted(expected.items()):
        mine = runs[runs["system"] == system] if len(runs) else runs
        if len(mine):
            row = summarize_system(mine, max_nonconverged)
        else:
            row = {c: None for c in summary_columns} | {
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
    frame = pd.DataFrame(rows, columns=["partial", "n_expected", *summary_columns])
    if len(runs):
        frame["benchmark"] = runs["benchmark"].iloc[0]
    return frame


def _parse(args: argparse.Namespace) -> int:
    """mlperf.log + run.json -> result.json."""
    meta = formats.read_json(args.meta, "run.json")
    quality = json.loads(args.quality_json)
    verdict = verdict_of(args.log, args.compliance_ruleset, args.compliance_cache)
    parsed = parse_run(args.log, meta, quality, args.time_to_train, verdict)
    result = formats.stamped("result.json", parsed)
    write_json(args.output, result)
    state = "converged" if result["converged"] else "did NOT converge"
    print(f"run {result['run']}: {state}, time to train {result['time_to_train_s']} s")
    return 0


def _collect(args: argparse.Namespace) -> int:
    """result.json files -> runs.csv."""
    write_csv(collect(args.results), args.output)
    return 0


def _summarize(args: argparse.Namespace) -> int:
    """runs.csv -> summary.csv; runs of different configurations are refused (exit 1)."""
    try:
        table = summarize(
            read_csv(args.runs),
            args.max_nonconverged,
            resamples=args.bootstrap_resamples,
            seed=args.bootstrap_seed,
            olympic_drop=args.olympic_drop,
        )
    except AggregationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    write_csv(table, args.output, float_format=FLOAT_FORMAT)
    print(
        table.to_string(
            index=False,
            columns=["system", "n_runs", "n_converged", "valid", "score_s", "mean_s", "cv"],
        )
    )
    return 0


def _compare(args: argparse.Namespace) -> int:
    """runs.csv + summary.csv -> comparison.csv."""
    runs = read_csv(args.runs)
    table = compare(
        runs,
        read_csv(args.summary),
        args.reference,
        min_effect=args.min_effect,
        resamples=args.bootstrap_resamples,
        seed=args.bootstrap_seed,
    )
    _, note = choose_reference(sorted(set(runs["system"])), args.reference)
    write_csv(table, args.output, float_format=FLOAT_FORMAT)
    print(note or f"reference system: {args.reference}")
    print("\n".join(table["verdict"]) or "one system: nothing to compare")
    return 0


def _evals(args: argparse.Namespace) -> int:
    """result.json files -> evals.csv."""
    rows = [r for f in args.results for r in eval_rows(read_json(Path(f), "result.json"))]
    write_csv(pd.DataFrame(rows, columns=EVAL_COLUMNS), args.output)
    return 0


def _partial(args: argparse.Namespace) -> int:
    """finished result.json files -> summary.partial.csv."""
    frame = collect(args.results) if args.results else pd.DataFrame(columns=RUN_COLUMNS)
    table = summarize_partial(frame, json.loads(args.expected_json), args.max_nonconverged)
    write_csv(table, args.output, float_format=FLOAT_FORMAT)
    print(
        table.to_string(
            index=False,
            columns=["system", "partial", "n_runs", "n_expected", "score_s", "mean_s"],
        )
    )
    return 0


def _bootstrap_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap-resamples", type=int, default=stats.BOOTSTRAP_RESAMPLES)
    parser.add_argument("--bootstrap-seed", type=int, default=stats.BOOTSTRAP_SEED)


def _parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per table, each with the function that makes it."""
    p = argparse.ArgumentParser(
        prog="python -m scripts tables", description="Parse runs and aggregate them into tables."
    )
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
    pa.add_argument(
        "--compliance-ruleset",
        metavar="RULESET",
        help="also judge the log with mlperf-logging's compliance checker of this ruleset",
    )
    pa.add_argument("--compliance-cache", type=Path, metavar="DIR", help="its verdicts' cache")
    pa.add_argument("--output", type=Path, required=True)
    co = sub.add_parser("collect", help="result.json files -> runs.csv")
    co.add_argument("--output", type=Path, required=True)
    co.add_argument("results", type=Path, nargs="+")
    su = sub.add_parser("summarize", help="runs.csv -> summary.csv")
    su.add_argument("--runs", type=Path, required=True)
    su.add_argument("--max-nonconverged", type=int, default=1)
    su.add_argument(
        "--olympic-drop",
        type=int,
        default=None,
        help="runs dropped at each end (the benchmark's mlperf.olympic_drop; default: the "
        "runs' olympic_drop column, else 1)",
    )
    _bootstrap_options(su)
    su.add_argument("--output", type=Path, required=True)
    cm = sub.add_parser("compare", help="runs.csv + summary.csv -> comparison.csv")
    cm.add_argument("--runs", type=Path, required=True)
    cm.add_argument("--summary", type=Path, required=True)
    cm.add_argument("--reference", default=None, help="the reference system")
    cm.add_argument("--min-effect", type=float, default=0.0)
    _bootstrap_options(cm)
    cm.add_argument("--output", type=Path, required=True)
    ev = sub.add_parser("evals", help="result.json files -> evals.csv")
    ev.add_argument("--output", type=Path, required=True)
    ev.add_argument("results", type=Path, nargs="+")
    pt = sub.add_parser("partial", help="finished result.json files -> summary.partial.csv")
    pt.add_argument("--expected-json", required=True, help='{"system": n_runs, ...}')
    pt.add_argument("--max-nonconverged", type=int, default=1)
    pt.add_argument("--output", type=Path, required=True)
    pt.add_argument("results", type=Path, nargs="*")
    for name, command in SUBCOMMANDS.items():
        sub.choices[name].set_defaults(run=command)
    return p


SUBCOMMANDS = {
    "parse": _parse,
    "collect": _collect,
    "summarize": _summarize,
    "compare": _compare,
    "evals": _evals,
    "partial": _partial,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except (CorruptFile, NewerFormat) as exc:  # e.g. a half-written result.json: named
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
