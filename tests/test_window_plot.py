"""plots/windows.png (scripts.analysis.window_plot): every window's score of the M-of-N protocol
drawn from summary.csv and runs.csv, the median window starred, a window without a score on the
top edge; only a benchmark with a window setting asks for it. What is checked is the data drawn
(the axes' artists), never pixels."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from scripts.analysis.report_windows import window_points, window_section
from scripts.analysis.summary_table import summarize
from scripts.analysis.window_plot import CHOSEN_LABEL, UNSCORED_LABEL, draw_windows, main
from scripts.core.safe_csv import write_csv
from tests.test_rule_inputs import inputs_for
from tests.test_windows import TIMES, runs_frame

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# TIMES' three windows of ten by hand (tests/test_windows.py): runs 1..10, 2..11, 3..12
BY_HAND = [103.5, 104.5, 103.875]


def tables(tmp_path: Path, runs: pd.DataFrame, window: int | None) -> tuple[Path, Path]:
    """runs.csv and summary.csv as the workflow writes them."""
    runs_csv, summary_csv = tmp_path / "runs.csv", tmp_path / "summary.csv"
    write_csv(runs, runs_csv)
    write_csv(summarize(runs, window=window), summary_csv)
    return runs_csv, summary_csv


def drawn(runs: pd.DataFrame, window: int) -> plt.Axes:
    """The axes the plot draws, kept open to read its artists."""
    _, ax = plt.subplots()
    draw_windows(ax, window_points(summarize(runs, window=window), runs))
    return ax


def collection(ax: plt.Axes, label: str) -> list[tuple[float, float]]:
    [found] = [c for c in ax.collections if c.get_label() == label]
    return [(float(x), float(y)) for x, y in found.get_offsets()]


def test_the_plot_of_twelve_runs_with_window_ten_stars_the_median_window(tmp_path: Path) -> None:
    runs_csv, summary_csv = tables(tmp_path, runs_frame(TIMES), 10)
    png = tmp_path / "plots" / "windows.png"
    assert main(["--runs", str(runs_csv), "--summary", str(summary_csv), "--output", str(png)]) == 0
    assert png.read_bytes().startswith(PNG_MAGIC)

    ax = drawn(runs_frame(TIMES), 10)
    [line] = [ln for ln in ax.get_lines() if ln.get_label() == "s"]
    assert list(line.get_xdata()) == [1, 2, 3]  # each window at its first run
    assert list(line.get_ydata()) == pytest.approx(BY_HAND)
    # the median of 103.5, 104.5, 103.875: the window of runs 3..12, labelled with its score
    assert collection(ax, CHOSEN_LABEL) == [(3.0, pytest.approx(103.875))]
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["chosen, runs 3..12, 103.9 s"]
    assert ax.get_ylabel() == "olympic score of the window (s)"
    plt.close(ax.figure)


def test_a_window_without_a_score_is_on_the_top_edge_and_labelled() -> None:
    # system a: two failed runs in each of the first three windows of five (inf), the fourth
    # scored; the lower median of (inf, inf, inf, 104) is the first window: no score
    times: list[float | None] = [100.0, 101.0, None, 103.0, None, 105.0, 104.0, 102.0]
    converged = [t is not None for t in times]
    runs = pd.concat(
        [runs_frame(times, converged).assign(system="a"), runs_frame(TIMES[:8]).assign(system="b")],
        ignore_index=True,
    )
    ax = drawn(runs, 5)
    top = ax.get_ylim()[1]
    [unscored] = [
        c for c in ax.collections if c.get_label().startswith("_") and len(c.get_offsets())
    ]
    assert [(x, y) for x, y in unscored.get_offsets()] == [(1, top), (2, top), (3, top)]
    assert collection(ax, UNSCORED_LABEL) == []  # the legend's entry only
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("no score") == 3
    # both systems' chosen windows: a's on the top edge, b's (runs 2..6, 103.0 s) at its score
    assert collection(ax, CHOSEN_LABEL) == [(1.0, top), (2.0, pytest.approx(103.0))]
    assert "a: chosen, runs 1..5, no score" in texts
    assert "b: chosen, runs 2..6, 103.0 s" in texts
    # every scored window is below the top edge
    [b_line] = [ln for ln in ax.get_lines() if ln.get_label() == "b"]
    assert max(b_line.get_ydata()) < top
    plt.close(ax.figure)


def test_without_a_window_the_plot_says_so_and_the_report_has_no_figure(tmp_path: Path) -> None:
    runs_csv, summary_csv = tables(tmp_path, runs_frame(TIMES), None)
    png = tmp_path / "windows.png"
    assert main(["--runs", str(runs_csv), "--summary", str(summary_csv), "--output", str(png)]) == 0
    assert png.read_bytes().startswith(PNG_MAGIC)
    runs = runs_frame(TIMES)
    assert window_section(summarize(runs), runs, png) == []


def test_the_report_section_embeds_the_plot_when_it_exists(tmp_path: Path) -> None:
    runs = runs_frame(TIMES)
    summary = summarize(runs, window=10)
    png = tmp_path / "windows.png"
    assert not any("<figure" in part for part in window_section(summary, runs, png))
    runs_csv, summary_csv = tables(tmp_path, runs, 10)
    main(["--runs", str(runs_csv), "--summary", str(summary_csv), "--output", str(png)])
    html = "\n".join(window_section(summary, runs, png))
    assert '<figure id="plot-windows"><img alt="Every window&#x27;s score (M-of-N)"' in html
    assert "data:image/png;base64," in html


def test_only_a_benchmark_with_a_window_asks_for_the_plot(tmp_path: Path) -> None:
    windows = "results/gnmt/plots/windows.png"
    assert windows not in inputs_for(tmp_path).plots("gnmt")
    own = {"benchmarks": {"gnmt": {"runs": 12, "window": 10}}}
    assert inputs_for(tmp_path, own).plots("gnmt")[-1] == windows
    shared = {"statistics": {"window": 5}}
    assert inputs_for(tmp_path, shared).plots("gnmt")[-1] == windows
