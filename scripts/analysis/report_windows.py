"""report.html's M-of-N section: every window's score from summary.csv's ``window_scores``, the
chosen (median) window marked, in a table and in plots/windows.png
(:mod:`scripts.analysis.window_plot`). Nothing without the protocol (no such column).

:func:`window_points` is the one reading of the windows from the tables, so the table and the
plot cannot disagree on which runs a window holds or which one was chosen."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from scripts.analysis.report_cells import esc, fmt_s
from scripts.analysis.report_html import figure
from scripts.analysis.windows import parse_scores

__all__ = ["WINDOWS_PLOT", "WindowPoint", "window_points", "window_section"]

WINDOWS_PLOT = "windows"  # plots/windows.png, drawn by scripts.analysis.window_plot


@dataclass(frozen=True, slots=True)
class WindowPoint:
    """One window of one system: its runs, its olympic score and whether it is the chosen one."""

    system: str
    first_run: int  # run number of the window's first run
    last_run: int  # ... and of its last
    score_s: float  # seconds; inf for a window without a score
    chosen: bool  # the median window (summary.csv's window_first_run)

    @property
    def scored(self) -> bool:
        return math.isfinite(self.score_s)


def _system_points(row: dict[str, Any], run_numbers: list[int]) -> list[WindowPoint]:
    """The windows of one summary.csv row. ``run_numbers``: the system's runs in run order
    (runs.csv); M runs and M - N + 1 scores give the window size N."""
    scores = parse_scores(row.get("window_scores"))
    if not scores:
        return []
    size = len(run_numbers) - len(scores) + 1
    if size < 1:
        raise ValueError(
            f"summary.csv: system {row['system']} has {len(scores)} window_scores but runs.csv "
            f"has {len(run_numbers)} runs of it: the tables are not from the same runs"
        )
    chosen = row.get("window_first_run")
    return [
        WindowPoint(
            str(row["system"]),
            run_numbers[i],
            run_numbers[i + size - 1],
            value,
            run_numbers[i] == chosen,
        )
        for i, value in enumerate(scores)
    ]


def window_points(summary: pd.DataFrame, runs: pd.DataFrame) -> list[WindowPoint]:
    """Every window of every system of summary.csv (in its order), in run order; [] when
    summary.csv has no window columns (no M-of-N protocol)."""
    if "window_scores" not in summary:
        return []
    numbers = {s: sorted(int(n) for n in g["run"]) for s, g in runs.groupby("system")}
    return [
        p
        for row in summary.to_dict("records")
        for p in _system_points(row, numbers.get(row["system"], []))
    ]


def _row(point: WindowPoint) -> str:
    """One table row: the window's system, runs, score and the mark on the chosen one."""
    score = fmt_s(point.score_s) if point.scored else "no score (infinite)"
    cls = ' class="chosen"' if point.chosen else ""
    return (
        f"<tr{cls}><td>{esc(point.system)}</td><td>runs {point.first_run}..{point.last_run}</td>"
        f"<td>{esc(score)}</td><td>{'chosen: the median window' if point.chosen else ''}</td></tr>"
    )


def window_section(
    summary: pd.DataFrame, runs: pd.DataFrame, plot: Path | None = None
) -> list[str]:
    """The section's HTML parts: a heading, what the protocol is, one table of every system's
    windows and, when ``plot`` (plots/windows.png) exists, the plot; [] when summary.csv has no
    window columns."""
    points = window_points(summary, runs)
    if not points:
        return []
    return [
        "<h2>M-of-N windows</h2>",
        "<p>Every window of N consecutive runs, in run order, scored by the olympic mean; "
        "score_s is the median window's (for an even number of windows the lower median), "
        "marked below.</p>",
        "<table><tr><th>system</th><th>window</th><th>score</th><th></th></tr>",
        *(_row(p) for p in points),
        "</table>",
        *([figure(WINDOWS_PLOT, plot)] if plot is not None and plot.exists() else []),
    ]
