"""What a column of summary.csv or comparison.csv is: :class:`Column` and :class:`Registry`.

A table's registry lists its columns in file order, one :class:`Column` each: its name, its
``source`` (the function that computes its value, from :mod:`scripts.analysis.stats` or
:mod:`scripts.analysis.scoring`, wrapped to read the rows it needs), its ``caption`` (what the
table's caption, ``report/summary.rst`` or ``report/comparison.rst``, says about it) and, when
report.html's table shows it, its ``header`` and ``fmt`` (a name of
:data:`scripts.analysis.report_cells.FORMATS`). The registries themselves are
:data:`scripts.analysis.summary_columns.SUMMARY` and
:data:`scripts.analysis.comparison_columns.COMPARISON`; runs.csv's columns are a plain list
(:mod:`scripts.analysis.run_columns`).

Everything that lists the columns reads the registries at the time it runs:
:mod:`scripts.analysis.summary_table` and :mod:`scripts.analysis.comparison_table` compute the
rows and write the CSV columns in this order, :mod:`scripts.analysis.report` builds its tables
and renders the captions, and the rules pass the registries to the caption templates
(``snakemake.params.columns``). A new statistic is its function in :mod:`scripts.analysis.stats`
and one entry in a registry.

Every snakemake invocation imports the registries (rules/report.smk), so nothing here imports
pandas, numpy or scipy before it is used.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # types only: pandas is imported on first use (see isna)
    import pandas as pd

# What a column's ``source`` reads: a summary column the runs of one system
# (scripts.analysis.summary_columns.SystemRuns); a comparison column its pair of systems, the
# whole table, or its finished row (scripts.analysis.comparison_columns)
Reads = Literal["runs", "pair", "table", "row"]

# How summary.csv, comparison.csv and leaderboard.csv write floats: 10 significant digits.
# Times from logs have millisecond resolution, so a score such as 1233.20325 s must not be
# rounded
FLOAT_FORMAT = "%.10g"


@dataclass(frozen=True)
class Column:
    """One column of a table: its name, what computes it, what the report says about it."""

    name: str
    source: Callable[[Any], Any]
    caption: str = ""  # "" when the table's caption does not list it (names, counts, ids)
    header: str | None = None  # report.html's header; None: report.html does not show it
    fmt: str = "text"  # how report.html formats it (scripts.analysis.report_cells.FORMATS)
    reads: Reads = "runs"  # what ``source`` reads (see Reads)


@dataclass(frozen=True)
class Registry:
    """The columns of one table, in file order. Not a tuple on purpose: passed as a rule's
    ``params`` for the caption templates, a value Snakemake cannot represent is left out of its
    params rerun trigger, so the registry never makes a finished table outdated."""

    table: str
    columns: tuple[Column, ...]

    def __iter__(self) -> Iterator[Column]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)

    def __repr__(self) -> str:
        return f"<{len(self.columns)} columns of {self.table}>"

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def captioned(self) -> list[Column]:
        """The columns the table's caption lists."""
        return [c for c in self.columns if c.caption]

    def plus(self, *more: Column) -> Registry:
        """This registry with ``more`` columns at the end."""
        return Registry(self.table, (*self.columns, *more))


def nan_to_none(x: Any) -> Any:
    """None for a missing value (None or nan), else ``x``: a table cell without a value."""
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def isna(value: Any) -> bool:
    """``pandas.isna`` of one value. pandas is imported on first use: it costs about 0.3 s, and
    every snakemake invocation imports the registries (the report's captions list the
    columns)."""
    import pandas as pd  # lazy: see the docstring

    return bool(pd.isna(value))


def optional_floats(column: pd.Series) -> list[float]:
    """The values of a column of runs.csv that have one, as floats."""
    return [float(x) for x in column if not isna(x)]
