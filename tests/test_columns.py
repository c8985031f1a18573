"""The column registry: a new statistic is its function and one registry entry, and it shows up
in summary.csv, in report.html's table and in the table's caption with nothing else edited."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from snakemake.persistence import UNREPRESENTABLE, PersistenceBase

from scripts.analysis import (
    columns,
    comparison_columns,
    report,
    report_cells,
    report_html,
    summary_columns,
    tables,
)

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
SUMMARY_NAMES = summary_columns.SUMMARY.names  # without the column a test adds


def spread_s(xs: list[float]) -> float:
    """A tiny statistic, as it would be added to scripts/analysis/stats.py: max - min."""
    return max(xs) - min(xs)


@pytest.fixture
def with_spread(monkeypatch: pytest.MonkeyPatch) -> columns.Column:
    entry = columns.Column(
        "spread_s",
        summary_columns.of_times(spread_s),
        caption="the slowest converged run's time minus the fastest one's",
        header="spread (s)",
        fmt="s",
    )
    monkeypatch.setattr(summary_columns, "SUMMARY", summary_columns.SUMMARY.plus(entry))
    return entry


def results_dir(tmp_path: Path) -> Path:
    """A benchmark's results folder with the golden runs, made by scripts.analysis.tables'
    commands."""
    res = tmp_path / "results"
    (res / "plots").mkdir(parents=True)
    shutil.copy(GOLDEN / "runs.csv", res / "runs.csv")
    boot = ["--bootstrap-resamples", "500", "--bootstrap-seed", "1"]
    runs, summary = str(res / "runs.csv"), str(res / "summary.csv")
    assert tables.main(["summarize", "--runs", runs, *boot, "--output", summary]) == 0
    assert (
        tables.main(
            ["compare", "--runs", runs, "--summary", summary, *boot]
            + ["--output", str(res / "comparison.csv")]
        )
        == 0
    )
    for name in report.PLOTS:
        (res / "plots" / f"{name}.png").write_bytes(b"not a real png")
    return res


def test_a_statistic_added_to_the_registry_reaches_the_table_the_report_and_the_caption(
    with_spread: columns.Column, tmp_path: Path
) -> None:
    res = results_dir(tmp_path)
    summary = pd.read_csv(res / "summary.csv")
    assert list(summary.columns) == [*SUMMARY_NAMES, "spread_s"]  # at the end
    golden = pd.read_csv(GOLDEN / "runs.csv")
    for row in summary.to_dict("records"):
        mine = golden[(golden["system"] == row["system"]) & golden["converged"]]
        want = mine["time_to_train_s"].max() - mine["time_to_train_s"].min()
        assert row["spread_s"] == pytest.approx(want)

    page = report.render("golden", res, {"benchmark": {}, "systems": {}}, generated="now")
    assert '<th class="text">spread (s)</th>' in page  # a row of the summary table
    assert with_spread.caption in page  # the summary caption lists it

    # the Snakemake report renders the same template with the registry as params.columns
    rst = report_html.render_caption("summary", summary_columns.SUMMARY)
    assert f"- ``spread_s``: {with_spread.caption}" in rst.splitlines()


def test_without_additions_the_tables_keep_their_golden_columns_and_bytes(tmp_path: Path) -> None:
    res = results_dir(tmp_path)
    for name in ("summary.csv", "comparison.csv"):
        head = (res / name).read_text().splitlines()[0]
        assert head == (GOLDEN / name).read_text().splitlines()[0]


@pytest.mark.parametrize(
    "registry",
    [summary_columns.SUMMARY, comparison_columns.COMPARISON],
    ids=["summary", "comparison"],
)
def test_every_entry_is_complete(registry: columns.Registry) -> None:
    names = registry.names
    assert len(names) == len(set(names)), "a column is listed twice"
    for c in registry:
        assert callable(c.source), c.name
        assert c.fmt in report_cells.FORMATS, f"{c.name}: unknown format {c.fmt!r}"
        assert c.reads in (
            ("runs",) if registry is summary_columns.SUMMARY else ("pair", "table", "row")
        )
        if c.header is not None and c.name not in ("system", "reference"):
            assert c.caption, f"{c.name} is shown in report.html but its caption says nothing"


@pytest.mark.parametrize("name", ["summary", "comparison"])
def test_every_captioned_column_is_in_the_rendered_caption(name: str) -> None:
    registry = summary_columns.SUMMARY if name == "summary" else comparison_columns.COMPARISON
    html = report_html.caption_html(name, registry)
    for c in registry.captioned:
        assert f'<tt class="docutils literal">{c.name}</tt>: {c.caption}' in html.replace(
            "&gt;", ">"
        ).replace("&quot;", '"')


def test_the_registry_is_no_params_rerun_trigger() -> None:
    """rules/report.smk passes the registry as params.columns for the caption templates;
    Snakemake leaves a value it cannot represent out of its params record, so adding a column
    does not make finished tables outdated (a campaign made before keeps its tables)."""
    for registry in (summary_columns.SUMMARY, comparison_columns.COMPARISON):
        assert PersistenceBase._serialize_param_builtin(None, registry) is UNREPRESENTABLE  # type: ignore[arg-type]
    rules = (Path(__file__).resolve().parents[1] / "rules" / "report.smk").read_text()
    assert "columns=summary_columns.SUMMARY," in rules
    assert "columns=comparison_columns.COMPARISON," in rules
