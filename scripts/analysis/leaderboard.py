"""The leaderboard of one benchmark and round: every system with an MLPerf score, ranked, with
an interval of its score and whether its neighbours in the ranking can be told apart.

    python -m scripts leaderboard --summary results/bert/summary.csv \\
        --runs results/bert/runs.csv --output results/bert/leaderboard.csv \\
        [--plot results/bert/plots/leaderboard.png]

The official MLPerf results table lists one number per system. This table adds what that
number cannot show: how precisely a system's own runs pin its score down, and therefore which
ranks are real. One ``summary.csv`` is one benchmark (of one round, for published results), so
one leaderboard is made from one summary.csv and its runs.csv.

- Ranked: every system whose summary row is ``valid`` with a ``score_s``, by ``score_s``
  (fastest first; equal scores share the lower rank, ties listed by system name).
- ``score_ci95_low_s`` / ``score_ci95_high_s``: :func:`bootstrap_score_interval` of the
  system's converged runs in runs.csv, times its ``rcp_scaling_factor`` when summary.csv has
  one (``score_s`` is then the scaled score).
- ``accelerator_minutes``: score_s / 60 x n_accelerators, empty when the number of
  accelerators is unknown (local systems).
- ``energy_j`` / ``energy_kwh``: summary.csv's MLPerf energy score, the energy to train
  (:func:`scripts.analysis.summary_columns.energy_score`), of a published power result or of
  the power logs a system's power source wrote here, empty without power results;
  ``power_source``: what measured it (runs.csv: published, command, or nvml: the GPUs only, so
  never comparable with a wall-plug figure); ``--energy-plot`` draws time to train against
  energy for the systems that have one (:func:`scripts.analysis.plots.plot_energy`).
- ``overlaps_next``: whether this system's interval overlaps the next ranked one's (they are
  then not distinguishable); ``group``: the ranks joined by such overlaps, as text ("ranks 3
  to 5 overlap"), or "distinct" for a system whose interval overlaps neither neighbour.
- Unranked, after the ranked ones: the systems without a valid score, with the reason.

``submitter``, ``division``, ``accelerator``, ``n_accelerators`` come from summary.csv when it
has them (imported systems, from the published systems/<system>.json); without them, or empty,
the leaderboard still ranks and leaves those cells empty.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from scripts.analysis import stats
from scripts.analysis.columns import FLOAT_FORMAT
from scripts.analysis.comparison_table import converged_times
from scripts.core.safe_csv import read_csv, write_csv

COLUMNS = [
    "rank",
    "system",
    "submitter",
    "division",
    "accelerator",
    "n_accelerators",
    "score_s",
    "score_ci95_low_s",
    "score_ci95_high_s",
    "n_runs",
    "n_converged",
    "accelerator_minutes",
    "energy_j",
    "energy_kwh",
    "power_source",
    "overlaps_next",
    "group",
    "reason",
]
# summary.csv columns the leaderboard copies when present (empty cells otherwise)
DESCRIPTIVE = ("submitter", "division", "accelerator")
NAN = float("nan")


def bootstrap_score_interval(
    times_s: Sequence[float],
    n_nonconverged: int = 0,
    confidence: float = stats.CONFIDENCE,
    resamples: int = stats.BOOTSTRAP_RESAMPLES,
    seed: int = stats.BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the MLPerf olympic score of one system's runs.

    ``times_s`` are the converged runs' times to train; ``n_nonconverged`` (0 or 1) the runs
    that did not converge, which the score drops as the slowest. Each of ``resamples``
    resamples draws len(times_s) converged times with replacement
    (``numpy.random.default_rng(seed).integers``, as
    :func:`scripts.analysis.stats.bootstrap_mean_interval`)
    and is scored by the rule of :func:`scripts.analysis.scoring.olympic_score` with the number of
    non-converged runs held fixed: drop the fastest time, and the slowest unless a
    non-converged run is the one dropped as slowest; average the rest. The interval is the
    (1-confidence)/2 and (1+confidence)/2 quantiles (numpy ``method="linear"``) of the
    resampled scores. The same seed gives the same interval.

    With 3 runs (llama31_405b) the olympic score is the median of 3 and a resample's score
    one of the 3 times; each end of the time range is a resample's score with probability
    7/27 (over 2.5%), so the interval is exactly [fastest, slowest]: 3 runs locate the score
    no more finely than their range. (nan, nan) with fewer than 2 converged times or
    fewer than 3 runs, where the score itself is undefined, and with ``n_nonconverged``
    above 1, where it is invalid.
    """
    np = _np()
    v = np.asarray([float(x) for x in times_s], dtype=float)
    if not np.all(np.isfinite(v)):
        raise ValueError("bootstrap_score_interval needs finite times")
    if n_nonconverged not in (0, 1):
        return NAN, NAN
    n = len(v)
    if n < 2 or n + n_nonconverged < 3:
        return NAN, NAN
    rng = np.random.default_rng(seed)
    draws = np.sort(v[rng.integers(0, n, size=(resamples, n))], axis=1)
    kept = draws[:, 1 : n - (1 - n_nonconverged)]  # drop the fastest (and the slowest)
    scores = kept.mean(axis=1)
    lo, hi = np.quantile(scores, [(1 - confidence) / 2, (1 + confidence) / 2], method="linear")
    return float(lo), float(hi)


def _np() -> Any:
    """numpy, imported on first use (as in scripts.analysis.stats)."""
    import numpy  # lazy: keeps the module light to import, like scripts.analysis.stats

    return numpy


def _cell(row: pd.Series | dict[str, Any], column: str) -> Any:
    """A summary.csv cell, or None when the column is absent or the cell empty."""
    value = row.get(column)
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _number(row: pd.Series | dict[str, Any], column: str) -> float | None:
    value = _cell(row, column)
    try:
        x = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return x if x is not None and math.isfinite(x) else None


def _is_valid(row: pd.Series | dict[str, Any]) -> bool:
    valid = _cell(row, "valid")
    return (valid is True or str(valid) == "True") and _number(row, "score_s") is not None


def accelerator_minutes(score_s: float | None, n_accelerators: float | None) -> float | None:
    """score_s / 60 x n_accelerators: the accelerator time one training costs; None when
    either is unknown."""
    if score_s is None or n_accelerators is None:
        return None
    return score_s / 60.0 * n_accelerators


def score_interval(
    row: pd.Series | dict[str, Any],
    runs: pd.DataFrame,
    resamples: int = stats.BOOTSTRAP_RESAMPLES,
    seed: int = stats.BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """The 95% interval of one summary row's score: :func:`bootstrap_score_interval` of the
    system's converged runs in ``runs`` (runs.csv), times its ``rcp_scaling_factor`` when the
    row has one (its score_s is the scaled score)."""
    system = str(row["system"])
    mine = runs[runs["system"] == system] if len(runs) else runs
    times = converged_times(runs, system) if len(mine) else []
    lo, hi = bootstrap_score_interval(times, len(mine) - len(times), resamples=resamples, seed=seed)
    factor = _number(row, "rcp_scaling_factor") or 1.0
    return lo * factor, hi * factor


def overlaps(a: tuple[float, float], b: tuple[float, float]) -> bool | None:
    """Whether two closed intervals overlap; None when either is unknown (nan)."""
    if any(math.isnan(x) for x in (*a, *b)):
        return None
    return a[0] <= b[1] and b[0] <= a[1]


def groups(links: Sequence[bool | None], ranks: Sequence[int]) -> list[str]:
    """The ``group`` text of each ranked row: ``links[i]`` says whether row i and row i+1
    overlap (an unknown link, None, counts as overlapping: they are not shown to differ).
    Rows joined by links form one group, named by its first and last rank."""
    out = [""] * len(ranks)
    start = 0
    for i in range(len(ranks)):
        if i + 1 < len(ranks) and links[i] is not False:
            continue
        first, last = ranks[start], ranks[i]
        text = "distinct" if start == i else f"ranks {first} to {last} overlap"
        if start != i and first == last:
            text = f"rank {first} (a tie) overlaps"
        out[start : i + 1] = [text] * (i + 1 - start)
        start = i + 1
    return out


def power_source(runs: pd.DataFrame, system: str) -> str | None:
    """What measured a system's energy: its runs' ``power_source`` in runs.csv (published,
    command, nvml), joined by "+" when they differ; None without one."""
    if "power_source" not in runs or not len(runs):
        return None
    cells = runs.loc[runs["system"] == system, "power_source"]
    found = sorted({str(c) for c in cells if isinstance(c, str) and c.strip()})
    return "+".join(found) or None


def _base_row(row: pd.Series | dict[str, Any]) -> dict[str, Any]:
    """The columns a leaderboard row copies from its summary row."""
    out: dict[str, Any] = {c: _cell(row, c) for c in DESCRIPTIVE}
    n_acc = _number(row, "n_accelerators")
    score = _number(row, "score_s")
    return {
        "system": row["system"],
        **out,
        "n_accelerators": int(n_acc) if n_acc is not None else None,
        "score_s": score,
        "n_runs": _cell(row, "n_runs"),
        "n_converged": _cell(row, "n_converged"),
        "accelerator_minutes": accelerator_minutes(score, n_acc),
        "energy_j": _number(row, "energy_j"),
        "energy_kwh": _number(row, "energy_kwh"),
    }


def leaderboard(
    summary: pd.DataFrame,
    runs: pd.DataFrame,
    *,
    resamples: int = stats.BOOTSTRAP_RESAMPLES,
    seed: int = stats.BOOTSTRAP_SEED,
) -> pd.DataFrame:
    """The leaderboard of one benchmark: its summary.csv and runs.csv in, one row per system
    out (:data:`COLUMNS`): the ranked systems by score, then the unranked ones with why."""
    records = summary.to_dict("records")
    ranked = sorted(
        (r for r in records if _is_valid(r)),
        key=lambda r: (float(r["score_s"]), str(r["system"])),
    )
    rows = []
    for r in ranked:
        lo, hi = score_interval(r, runs, resamples, seed)
        rows.append({**_base_row(r), "score_ci95_low_s": lo, "score_ci95_high_s": hi,
                     "power_source": power_source(runs, str(r["system"]))})  # fmt: skip
    ranks: list[int] = []
    for i, row in enumerate(rows):  # equal scores share the lower rank ("1224")
        tie = i and row["score_s"] == rows[i - 1]["score_s"]
        ranks.append(ranks[-1] if tie else i + 1)
    intervals = [(row["score_ci95_low_s"], row["score_ci95_high_s"]) for row in rows]
    links = [overlaps(intervals[i], intervals[i + 1]) for i in range(len(rows) - 1)]
    nexts = [*links, None][: len(rows)]  # the last ranked system has no next one
    for row, rank, link, group in zip(rows, ranks, nexts, groups(links, ranks), strict=True):
        row.update(rank=rank, overlaps_next=link, group=group, reason="")
    unranked = sorted((r for r in records if not _is_valid(r)), key=lambda r: str(r["system"]))
    for r in unranked:
        reason = _cell(r, "reason") or "no MLPerf score in summary.csv"
        rows.append({**_base_row(r), "rank": None, "score_s": None, "reason": reason,
                     "power_source": power_source(runs, str(r["system"]))})  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def describe_row(row: pd.Series | dict[str, Any]) -> str:
    """One line of the leaderboard for the terminal and the report's text."""
    if _cell(row, "rank") is None:
        return f"-  {row['system']}: unranked ({row['reason']})"
    lo, hi = row["score_ci95_low_s"], row["score_ci95_high_s"]
    interval = "n/a" if pd.isna(lo) else f"{lo:.5g}-{hi:.5g} s"
    acc = row.get("accelerator_minutes")
    cost = "" if _cell(row, "accelerator_minutes") is None else f", {acc:.0f} accelerator-min"
    kwh = _number(row, "energy_kwh")
    gpus_only = " of the GPUs only" if "nvml" in str(_cell(row, "power_source")) else ""
    cost += "" if kwh is None else f", {kwh:.4g} kWh{gpus_only}"
    return (
        f"{int(row['rank'])}. {row['system']}: {row['score_s']:.5g} s "
        f"(95% interval {interval}{cost}; {row['group']})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scripts leaderboard",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--summary", type=Path, required=True, help="the benchmark's summary.csv")
    p.add_argument("--runs", type=Path, required=True, help="its runs.csv")
    p.add_argument("--output", type=Path, required=True, help="leaderboard.csv to write")
    p.add_argument("--plot", type=Path, help="the leaderboard plot (PNG) to write")
    p.add_argument("--energy-plot", type=Path, help="the time-against-energy plot (PNG)")
    p.add_argument("--bootstrap-resamples", type=int, default=stats.BOOTSTRAP_RESAMPLES)
    p.add_argument("--bootstrap-seed", type=int, default=stats.BOOTSTRAP_SEED)
    args = p.parse_args(argv)
    try:
        return _write(args)
    except (OSError, KeyError, ValueError, pd.errors.ParserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _write(args: argparse.Namespace) -> int:
    board = leaderboard(
        read_csv(args.summary),
        read_csv(args.runs),
        resamples=args.bootstrap_resamples,
        seed=args.bootstrap_seed,
    )
    write_csv(board, args.output, float_format=FLOAT_FORMAT)
    if args.plot is not None:
        from scripts.analysis.plots import plot_leaderboard  # lazy: matplotlib only when plotting

        plot_leaderboard(board, args.plot)
    if args.energy_plot is not None:
        from scripts.analysis.plots import plot_energy  # lazy: matplotlib only when plotting

        plot_energy(board, args.energy_plot)
    print("\n".join(describe_row(r) for r in board.to_dict("records")) or "no system")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
