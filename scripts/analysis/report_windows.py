"""report.html's M-of-N section: every window's score from summary.csv's ``window_scores``, the
chosen (median) window marked. Nothing without the protocol (no such column)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from scripts.analysis.report_cells import esc, fmt_s
from scripts.analysis.windows import parse_scores

__all__ = ["window_section"]


def _rows(row: dict[str, Any], run_numbers: list[int]) -> list[str]:
    """One table row per window of one system: its runs, its score, and the mark on the chosen
    one (the window whose first run is ``window_first_run``). ``run_numbers``: the system's runs
    in run order (runs.csv)."""
    scores = parse_scores(row.get("window_scores"))
    size = len(run_numbers) - len(scores) + 1
    chosen = row.get("window_first_run")
    out = []
    for i, value in enumerate(scores):
        first, last = run_numbers[i], run_numbers[i + size - 1]
        mark = first == chosen
        score = "no score (infinite)" if value == float("inf") else fmt_s(value)
        cls = ' class="chosen"' if mark else ""
        out.append(
            f"<tr{cls}><td>{esc(row['system'])}</td><td>runs {first}..{last}</td>"
            f"<td>{esc(score)}</td><td>{'chosen: the median window' if mark else ''}</td></tr>"
        )
    return out


def window_section(summary: pd.DataFrame, runs: pd.DataFrame) -> list[str]:
    """The section's HTML parts: a heading, what the protocol is, and one table of every
    system's windows; [] when summary.csv has no window columns."""
    if "window_scores" not in summary:
        return []
    numbers = {s: sorted(int(n) for n in g["run"]) for s, g in runs.groupby("system")}
    rows = [
        r for row in summary.to_dict("records") for r in _rows(row, numbers.get(row["system"], []))
    ]
    if not rows:
        return []
    return [
        "<h2>M-of-N windows</h2>",
        "<p>Every window of N consecutive runs, in run order, scored by the olympic mean; "
        "score_s is the median window's (for an even number of windows the lower median), "
        "marked below.</p>",
        "<table><tr><th>system</th><th>window</th><th>score</th><th></th></tr>",
        *rows,
        "</table>",
    ]
