"""How report.html shows one value: seconds, percentages, p-values, yes/no, times of day.

Each formatter takes a value of a table (a CSV cell as pandas reads it) and returns HTML-safe
text. :data:`FORMATS` names them for the column registries (``Column.fmt``). A missing value
(None, nan, an empty cell) is never given to a formatter by the page's tables: :func:`cell`
shows it as :data:`MISSING`, whatever the column's format. In a sentence (a verdict, a warning)
:func:`fmt_s` and :func:`fmt_num` write a missing number as ``n/a``.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Callable
from typing import Any

import pandas as pd

Formatter = Callable[[Any], str]

MISSING = "\u2013"  # an en dash: the cell of a value that is missing (never "nan")


def esc(x: Any) -> str:
    """Text, HTML-escaped; None is nothing."""
    return html.escape("" if x is None else str(x))


def is_missing(x: Any) -> bool:
    """Whether a value is missing: None, nan (an empty cell of a CSV file) or pandas' NA."""
    return x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NA


def cell(x: Any, formatter: Formatter) -> str:
    """One cell of a table: ``formatter`` of its value, or :data:`MISSING` without one (None,
    nan, an empty or blank string)."""
    if is_missing(x) or (isinstance(x, str) and not x.strip()):
        return MISSING
    return formatter(x)


def fmt_s(x: Any) -> str:
    """Seconds: 1 decimal from 10 s on, else 3 significant digits."""
    if is_missing(x):
        return "n/a"
    x = float(x)
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.3g}"


def fmt_num(x: Any, spec: str = ".3g") -> str:
    return "n/a" if is_missing(x) else format(float(x), spec)


# The formatters below are given values only: cell shows a missing one


def fmt_share(x: Any) -> str:
    return f"{float(x):.0%}"


def fmt_yes(x: Any) -> str:
    return "yes" if x is True or str(x) == "True" else "no"


def fmt_int(x: Any) -> str:
    return str(int(float(x)))


def fmt_pct(x: Any) -> str:
    return f"{float(x):.1%}"


def fmt_when(x: Any) -> str:
    """An ISO time as 'YYYY-MM-DD HH:MM:SS' (UTC)."""
    try:
        return dt.datetime.fromisoformat(str(x)).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return esc(x)


def fmt_p(x: Any) -> str:
    return f"{float(x):.3g}"


def fmt_ratio(x: Any) -> str:
    return fmt_num(x, ".3f")


def fmt_prob(x: Any) -> str:
    return fmt_num(x, ".2f")


def fmt_minutes(x: Any) -> str:
    return f"{float(x):,.1f}"


def fmt_kj(x: Any) -> str:
    """Joules shown as kJ, 3 significant digits (a run's energy beside its time)."""
    return f"{float(x) / 1000:.3g}"


TEXT_FORMATS = (esc,)  # left-aligned

# How a column's value is shown, by the name its registry entry gives (Column.fmt)
FORMATS: dict[str, Formatter] = {
    "text": esc,
    "int": fmt_int,
    "yes": fmt_yes,
    "s": fmt_s,
    "pct": fmt_pct,
    "num": fmt_num,
    "ratio": fmt_ratio,
    "prob": fmt_prob,
    "p": fmt_p,
    "kj": fmt_kj,
}
