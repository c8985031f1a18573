"""The command line that makes the campaign's tables (``python -m scripts tables <command>``;
the rules call ``python -m scripts.analysis.tables``), one subcommand per table:

- ``parse``: one run's ``mlperf.log`` (+ the runner's ``run.json``) -> ``result.json``, by hand
  (a run's own job writes it through :mod:`scripts.run.result_json`).
- ``collect``: every ``result.json`` of a benchmark -> ``runs.csv`` (one row per run:
  :mod:`scripts.analysis.runs_table`).
- ``summarize``: ``runs.csv`` -> ``summary.csv`` (one row per system): the MLPerf score
  (olympic mean, :func:`scripts.analysis.scoring.olympic_score`) and statistics of the converged
  runs' times to train (:mod:`scripts.analysis.summary_table`).
- ``compare``: ``runs.csv`` + ``summary.csv`` -> ``comparison.csv``: every system against the
  reference system (speedup with a bootstrap interval, tests, minimum detectable difference:
  :mod:`scripts.analysis.comparison_table`).
- ``evals``: every ``result.json`` -> ``evals.csv`` (one row per evaluation: the convergence
  curves).
- ``partial``: the finished runs' ``result.json`` -> ``summary.partial.csv`` (the summary so
  far, each system marked partial).

This module reads and writes the files; the modules named compute the rows, and the columns
are :mod:`scripts.analysis.run_columns`, :mod:`scripts.analysis.summary_columns` and
:mod:`scripts.analysis.comparison_columns`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from scripts.analysis import stats
from scripts.analysis.columns import FLOAT_FORMAT
from scripts.analysis.comparison_table import choose_reference, compare
from scripts.analysis.run_columns import EVAL_COLUMNS, RUN_COLUMNS
from scripts.analysis.runs_table import collect, eval_rows
from scripts.analysis.summary_table import AggregationError, summarize, summarize_partial
from scripts.core.formats import CorruptFile, NewerFormat
from scripts.core.run_records import ResultRecord, RunRecord
from scripts.core.safe_csv import read_csv, write_csv
from scripts.run.result_json import parse_run, verdict_of


def _parse(args: argparse.Namespace) -> int:
    """mlperf.log + run.json -> result.json."""
    meta = RunRecord.read(args.meta)
    quality = json.loads(args.quality_json)
    verdict = verdict_of(args.log, args.compliance_ruleset, args.compliance_cache)
    result = parse_run(args.log, meta, quality, args.time_to_train, verdict)
    result.write(args.output)
    state = "converged" if result.converged else "did NOT converge"
    print(f"run {result.run}: {state}, time to train {result.time_to_train_s} s")
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
            window=args.window,
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
    rows = [r for f in args.results for r in eval_rows(ResultRecord.read(Path(f)))]
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
    # long: one flat list of argparse options, one block per subcommand; splitting it would
    # only scatter the command line over helpers
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
    su.add_argument(
        "--window",
        type=int,
        default=None,
        help="the M-of-N protocol: score every window of this many consecutive runs and take "
        "the median window (scripts.analysis.windows; the benchmark's window or "
        "statistics.window); default: every run, as the rules' N-run score",
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
