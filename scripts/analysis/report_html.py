"""The HTML of report.html: its style, tables, figures, captions, definition lists, the head and
the end of the page. What goes in them is :mod:`scripts.analysis.report`'s choice; how one value
is shown is :mod:`scripts.analysis.report_cells`'.

Every table is inside its own ``<div class="table-wrap">`` (``overflow-x: auto``): a table wider
than the page scrolls within its box instead of being cut off at the page's edge. A table's
column glossary (its caption, ``report/<table>.rst``) comes after the table, folded in a
``<details>`` element: the numbers first, their definitions one click away.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jinja2
import pandas as pd
from docutils.core import publish_parts

from scripts.analysis import stats
from scripts.analysis.columns import Registry
from scripts.analysis.report_cells import FORMATS, TEXT_FORMATS, Formatter, cell, esc, is_missing

WORKFLOW_DIR = Path(__file__).resolve().parents[2]
CAPTIONS_DIR = WORKFLOW_DIR / "report"
PLOT_TITLES = {
    "runs": "Every run",
    "drift": "Drift",
    "ecdf": "Distribution (ECDF)",
    "mean_ci": "Mean and confidence interval",
    "speedup": "Speedup over the reference",
    "quality": "Convergence curves",
    "leaderboard": "Leaderboard",
    "energy": "Time against energy",
    "windows": "Every window's score (M-of-N)",
}

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.4; }
h1 { margin-bottom: 0.2em; } .scale { color: #555; margin-top: 0; }
.verdict { font-size: 1.25em; background: #eef6ee; border-left: 6px solid #3a3; padding: 0.6em;}
.verdict.none { background: #f4f4f4; border-color: #888; }
.warn { background: #fff6e0; border-left: 6px solid #e90; padding: 0.4em 0.6em; margin: 0.3em 0;}
.table-wrap { overflow-x: auto; max-width: 100%; margin: 0.5em 0 1.5em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: right; }
th { background: #f0f0f0; } td.text, th.text { text-align: left; }
details.glossary { margin: -1em 0 1.5em; font-size: 0.9em; }
details.glossary summary { cursor: pointer; color: #444; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #444; font-size: 0.9em; max-width: 800px; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.1em 1em; font-size: 0.9em; }
dt { font-weight: bold; } dd { margin: 0; word-break: break-all; }
"""

# (column, header, formatter): one column of a table of the page
TableColumn = tuple[str, str, Formatter]


# ---------------------------------------------------------------------------------------------
# Captions (report/<name>.rst)


def caption(name: str) -> str:
    """The caption text of a plot (report/<name>.rst, plain text)."""
    path = CAPTIONS_DIR / f"{name}.rst"
    return path.read_text().strip() if path.exists() else ""


class _CaptionJob:
    """What a caption template reads, as Snakemake's report gives it to the template of a
    rule's output: ``snakemake.params.columns`` (rules/report.smk passes the registry; None
    for a caption that lists no columns)."""

    def __init__(self, registry: Registry | None) -> None:
        self.params = SimpleNamespace(columns=registry)


def render_caption(name: str, registry: Registry | None = None) -> str:
    """report/<name>.rst rendered as Snakemake renders a caption (a Jinja2 template with
    ``trim_blocks`` and ``lstrip_blocks``), with ``registry`` as ``snakemake.params.columns``:
    reStructuredText."""
    template = (CAPTIONS_DIR / f"{name}.rst").read_text()
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    return env.from_string(template).render(snakemake=_CaptionJob(registry))


def caption_html(name: str, registry: Registry | None = None) -> str:
    """The caption of a table as HTML: :func:`render_caption`, turned into HTML by docutils
    (the body part, as Snakemake's report does)."""
    text = render_caption(name, registry)
    settings = {"report_level": 5, "halt_level": 5}  # a caption never prints warnings
    return publish_parts(text, writer="html", settings_overrides=settings)["body"]


def glossary(name: str, registry: Registry) -> str:
    """A table's caption, which defines its columns, folded: it goes after the table."""
    return (
        '<details class="glossary"><summary>What the columns mean</summary>'
        f"{caption_html(name, registry)}</details>"
    )


# ---------------------------------------------------------------------------------------------
# Tables


def table_columns(registry: Registry) -> list[TableColumn]:
    """The (column, header, formatter) triples of report.html's table of a registry's table:
    its columns that have a header, in file order."""
    return [(c.name, c.header, FORMATS[c.fmt]) for c in registry if c.header is not None]


def table(frame: pd.DataFrame, columns: Sequence[TableColumn]) -> str:
    """An HTML table of ``frame`` with (column, header, formatter) triples; every formatter
    returns HTML-safe text (``esc`` for text columns, which are left-aligned). A missing value
    is :data:`scripts.analysis.report_cells.MISSING`."""

    def cls(f: Formatter) -> str:
        return ' class="text"' if f in TEXT_FORMATS else ""

    head = "".join(f"<th{cls(f)}>{esc(h)}</th>" for _, h, f in columns)
    body = [
        "<tr>" + "".join(f"<td{cls(f)}>{cell(row.get(c), f)}</td>" for c, _, f in columns) + "</tr>"
        for row in frame.to_dict("records")
    ]
    return wrap_table(f"<table><tr>{head}</tr>{''.join(body)}</table>")


def wrap_table(table_html: str) -> str:
    """A table in its own scrolling box (``.table-wrap``: ``overflow-x: auto``), so that a
    wide one scrolls instead of running past the page. Every table of the page goes here."""
    return f'<div class="table-wrap">{table_html}</div>'


def table_by_system(frame: pd.DataFrame, rows: Sequence[TableColumn]) -> str:
    """``frame`` (one row per system) turned sideways: one row per statistic, one column per
    system, so that many statistics of a few systems fit the page."""
    records = frame.to_dict("records")
    head = "<th></th>" + "".join(f"<th>{esc(r['system'])}</th>" for r in records)
    body = [
        f'<tr><th class="text">{esc(h)}</th>'
        + "".join(f"<td>{cell(r.get(c), f)}</td>" for r in records)
        + "</tr>"
        for c, h, f in rows
        if c != "system"
    ]
    return wrap_table(f"<table><tr>{head}</tr>{''.join(body)}</table>")


def definition_list(items: Sequence[tuple[str, Any]]) -> str:
    """``<dl>`` of (term, value) pairs; a pair without a value is left out."""
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items if not is_missing(v))
    return f"<dl>{rows}</dl>"


# ---------------------------------------------------------------------------------------------
# Figures, the head and the end of the page


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def figure(name: str, png: Path, text: str | None = None) -> str:
    """A plot, embedded, with its title and caption (``text``, else report/<name>.rst)."""
    return (
        f'<figure id="plot-{name}"><img alt="{esc(PLOT_TITLES[name])}" '
        f'src="{data_uri(png)}"><figcaption><b>{esc(PLOT_TITLES[name])}.</b> '
        f"{esc(caption(name) if text is None else text)}</figcaption></figure>"
    )


def page_head(benchmark: str, bench: Mapping[str, Any]) -> list[str]:
    """The page up to the verdict: title, the benchmark's description, scale and target."""
    quality = bench.get("quality") or {}
    return [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(benchmark)}: time to train</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{esc(benchmark)}: time to train</h1>",
        f'<p class="scale">{esc(bench.get("description"))}<br>scale: '
        f"<b>{esc(bench.get('scale'))}</b><br>quality target: {esc(quality.get('metric'))} "
        f"{'>=' if quality.get('direction', 'higher') == 'higher' else '<='} "
        f"{esc(quality.get('target'))}; MLPerf runs: {esc(bench.get('runs'))}</p>",
    ]


def methods(st: Mapping[str, Any], results_dir: Path, generated: str | None) -> list[str]:
    """The end of the page: the methods, the statistics settings, when and from what."""
    return [
        "<h2>Methods</h2>",
        f"<p>{esc(caption('methods'))}</p>",
        f"<p>Bootstrap: {esc(st.get('bootstrap_resamples', stats.BOOTSTRAP_RESAMPLES))} "
        f"resamples, seed {esc(st.get('bootstrap_seed', stats.BOOTSTRAP_SEED))}; minimum "
        f"effect for 'significant': {esc(st.get('min_effect', 0.0))}.</p>",
        f"<p>Generated {esc(generated or dt.datetime.now(dt.UTC).isoformat(timespec='seconds'))}"
        f" from {esc(results_dir)}.</p>",
        "</body></html>",
    ]
