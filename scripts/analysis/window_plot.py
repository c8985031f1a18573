"""plots/windows.png: the M-of-N protocol's windows, drawn from the tables (summary.csv's
``window_scores`` and ``window_first_run``, runs.csv's run numbers).

    python -m scripts window-plot --runs runs.csv --summary summary.csv \\
        --output plots/windows.png

Per system, every window's olympic score (y, in seconds as every time of the report) against
the window's first run (x). A window without a score (more failed runs than the olympic mean may
drop: infinite in ``window_scores``) has no place on a time axis; it is drawn on the top edge
with a cross and labelled, so it is seen and not mistaken for a slow score. The chosen window
(the median, ``window_first_run``) is starred and labelled with its runs and score.

Only a benchmark with a window setting has this plot (rules/report.smk, ``plot_windows``, asked
for by RuleInputs.plots); run by hand on a summary without the protocol it says so instead. The
points are :func:`scripts.analysis.report_windows.window_points`, the same the report's window
table shows.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # as scripts.analysis.plots: no display needed

import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from scripts.analysis.plots import _empty, _figure, _save  # noqa: E402
from scripts.analysis.report_cells import fmt_s  # noqa: E402
from scripts.analysis.report_windows import WindowPoint, window_points  # noqa: E402
from scripts.core.safe_csv import read_csv  # noqa: E402

__all__ = ["CHOSEN_LABEL", "UNSCORED_LABEL", "draw_windows", "plot_windows"]

CHOSEN_LABEL = "chosen: the median window"
UNSCORED_LABEL = "no score (infinite), on the top edge"
NO_WINDOW = "no window setting: every run is scored as one set (statistics.window)"


def _limits(points: Sequence[WindowPoint]) -> tuple[float, float]:
    """The y range: the scored windows with a margin, and room above for the top edge where the
    windows without a score are drawn (0..1 when no window has a score)."""
    scored = [p.score_s for p in points if p.scored]
    lo, hi = (min(scored), max(scored)) if scored else (0.0, 1.0)
    pad = (hi - lo) * 0.15 or max(abs(hi) * 0.05, 1.0)
    return lo - pad, hi + 2 * pad


def _chosen_text(point: WindowPoint, many_systems: bool) -> str:
    score = f"{fmt_s(point.score_s)} s" if point.scored else "no score"
    who = f"{point.system}: " if many_systems else ""
    return f"{who}chosen, runs {point.first_run}..{point.last_run}, {score}"


def _draw_system(ax: Any, points: list[WindowPoint], color: Any, top: float) -> None:
    """One system's windows: its scored ones joined in run order, the ones without a score as
    crosses on the top edge, each labelled."""
    scored = [p for p in points if p.scored]
    ax.plot(
        [p.first_run for p in scored],
        [p.score_s for p in scored],
        marker="o",
        color=color,
        label=points[0].system,
    )
    unscored = [p for p in points if not p.scored]
    if unscored:
        xs = [p.first_run for p in unscored]
        ax.scatter(xs, [top] * len(xs), marker="X", s=90, color=color, clip_on=False, zorder=5)
        ax.scatter([], [], marker="X", s=90, color="0.3", label=UNSCORED_LABEL)
        for x in xs:
            ax.annotate(
                "no score",
                (x, top),
                xytext=(0, -14),
                textcoords="offset points",
                ha="center",
                fontsize="small",
            )


def draw_windows(ax: Any, points: Sequence[WindowPoint]) -> None:
    """Every window of every system on ``ax``, the chosen ones starred (one scatter labelled
    :data:`CHOSEN_LABEL`, its points in the order of ``points``)."""
    bottom, top = _limits(points)
    systems = list(dict.fromkeys(p.system for p in points))
    for system, color in zip(systems, sns.color_palette(n_colors=len(systems)), strict=True):
        _draw_system(ax, [p for p in points if p.system == system], color, top)
    chosen = [p for p in points if p.chosen]
    ys = [p.score_s if p.scored else top for p in chosen]
    ax.scatter(
        [p.first_run for p in chosen],
        ys,
        marker="*",
        s=320,
        facecolor="gold",
        edgecolor="black",
        zorder=6,
        clip_on=False,
        label=CHOSEN_LABEL,
    )
    last = max(p.first_run for p in points)
    for p, y in zip(chosen, ys, strict=True):
        right = p.first_run < last  # the last window's label goes left, inside the axes
        ax.annotate(
            _chosen_text(p, len(systems) > 1),
            (p.first_run, y),
            xytext=(10 if right else -10, -4 if p.scored else -28),
            textcoords="offset points",
            ha="left" if right else "right",
            fontsize="small",
        )
    ax.set_ylim(bottom, top)
    ax.margins(x=0.1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("the window's first run (windows of consecutive runs, in run order)")
    ax.set_ylabel("olympic score of the window (s)")
    ax.set_title("Every window's score (M-of-N), the median window starred")
    ax.legend(fontsize="small", loc="best")


def plot_windows(summary: pd.DataFrame, runs: pd.DataFrame, path: Path) -> list[WindowPoint]:
    """plots/windows.png from the tables; the points it drew (none: a note that the benchmark
    has no window setting)."""
    points = window_points(summary, runs)
    fig, ax = _figure()
    if points:
        draw_windows(ax, points)
    else:
        _empty(ax, NO_WINDOW)
    _save(fig, path)
    return points


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scripts window-plot",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--runs", type=Path, required=True, help="runs.csv")
    p.add_argument("--summary", type=Path, required=True, help="summary.csv")
    p.add_argument("--output", type=Path, required=True, help="the PNG to write")
    args = p.parse_args(argv)
    points = plot_windows(read_csv(args.summary), read_csv(args.runs), args.output)
    print(f"{args.output}: {len(points)} windows")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
