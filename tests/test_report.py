"""The report as a new user meets it: the default campaign makes it, a second system added by
overlay runs alone and shows up compared; warnings say the value, the threshold, what to do."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from scripts.analysis import (
    comparison_table,
    leaderboard,
    plots,
    report,
    report_cells,
    report_findings,
    run_columns,
    summary_table,
)
from scripts.core.run_records import ResultRecord, RunRecord
from tests.conftest import fake_campaign, jobs_run, snakemake, snapshot

PLOTS = ("runs", "drift", "ecdf", "mean_ci", "speedup", "quality")
GOLDEN = Path(__file__).resolve().parent / "data" / "golden"


def speed_overlay(wf: Path) -> Path:
    """The fake benchmark with its epoch time as a hyper-parameter, so a system can be slower."""
    overlay = {
        "benchmarks": {
            "fake": {
                "implementation": {
                    "command": "{python} fake_trainer.py --seed {seed} --run {run} "
                    "--target {target} --epoch-s {hp[epoch_s]}",
                    "hyperparameters": {"epoch_s": 0.02},
                }
            }
        }
    }
    path = wf / "speed.yaml"
    path.write_text(yaml.safe_dump(overlay))
    return path


@pytest.mark.workflow
def test_a_second_system_added_by_overlay_runs_alone_and_is_compared(workflow_copy: Path) -> None:
    wf = workflow_copy
    base = ["--cores", "1", "--configfile", str(fake_campaign(wf, runs=5)), str(speed_overlay(wf))]
    # the default target makes the tables, the plots and the report without extra commands
    first = snakemake(wf, *base)
    assert first.returncode == 0, first.stderr[-3000:]
    res = wf / "results" / "fake"
    for name in ("summary.csv", "comparison.csv", "report.html", "evals.csv"):
        assert (res / name).is_file(), name
    assert all((res / "plots" / f"{p}.png").is_file() for p in PLOTS)
    page = (res / "report.html").read_text()
    assert "local: MLPerf score" in page and "Add a second system to compare." in page
    assert pd.read_csv(res / "comparison.csv").empty

    before = {k: v for k, v in snapshot(wf).items() if k.startswith("results/fake/local/")}
    slow = wf / "slow.yaml"
    slow.write_text(
        yaml.safe_dump(
            {
                "systems": {
                    "slow": {
                        "description": "the same machine, each epoch 3x longer",
                        "backend": "local",
                        "threads": 1,
                        "hyperparameters": {"fake": {"epoch_s": 0.06}},
                    }
                }
            }
        )
    )
    second = snakemake(wf, *base, str(slow))
    assert second.returncode == 0, second.stderr[-3000:]
    jobs = jobs_run(second.stderr)
    trained = sorted(j for j in jobs if j.startswith("train_run"))
    assert trained == sorted(
        f"train_run benchmark=fake, system=slow, run={r:02d}" for r in range(1, 6)
    )
    after = snapshot(wf)
    assert {k: after[k] for k in before} == before  # local's runs untouched, byte and mtime

    summary = pd.read_csv(res / "summary.csv")
    assert summary["system"].tolist() == ["local", "slow"]
    comparison = pd.read_csv(res / "comparison.csv")
    row = comparison.iloc[0]
    assert (row["system"], row["reference"]) == ("slow", "local")
    assert row["speedup"] < 1 and row["speedup_ci95_high"] < 1 and bool(row["significant"])
    assert row["verdict"].startswith("slow is ") and " slower than local " in row["verdict"]
    page = (res / "report.html").read_text()
    assert row["verdict"] in page and "the same machine, each epoch 3x longer" in page
    assert page.index(row["verdict"]) < page.index("<h2>Summary</h2>")


SUMMARY_ROW = {
    "system": "box",
    "n_runs": 5,
    "n_converged": 5,
    "valid": True,
    "reason": "",
    "score_s": 100.0,
    "mean_s": 104.0,
    "std_s": 15.6,
    "cv": 0.15,
    "unstable": True,
    "runs_for_5pct_ci": 38,
    "outlier_runs": "3",
    "dropped_slowest_run": 3,
}


def test_warnings_say_the_value_the_threshold_and_what_to_do() -> None:
    summary = pd.DataFrame([SUMMARY_ROW])
    found = report_findings.warnings(summary, pd.DataFrame(), {"runs": 10}, [])
    text = "\n".join(found)
    assert (
        "box: the standard deviation (15.6 s) is 15% of the mean (104.0 s), at or above the "
        "10% threshold: results are unstable. Use more runs (about 38 runs would give a +/-5% "
        "confidence interval of the mean)" in text
    )
    assert "box: 5 runs, but MLPerf scores this benchmark on 10" in text
    assert "run(s) 3 lie outside 1.5 IQR" in text and "flagged, not dropped" in text


def test_warnings_for_an_invalid_result_a_dropped_run_and_a_weak_comparison() -> None:
    invalid = {**SUMMARY_ROW, "valid": False, "reason": "2 runs did not converge (runs 2, 4)"}
    one_bad = {**SUMMARY_ROW, "system": "ok", "n_converged": 4, "unstable": False}
    one_bad["outlier_runs"] = float("nan")
    comparison = pd.DataFrame(
        [
            {
                "system": "ok",
                "reference": "box",
                "significant": False,
                "mdd_rel": 0.12,
                "mdd_s": 12.5,
            }
        ]
    )
    results = [ResultRecord.from_json(r) for r in [
        {"system": "ok", "run": 3, "converged": False, "log": "l", "problems": ["run_stop status "
         "is 'aborted'"]},
        {"system": "ok", "run": 1, "converged": True, "log": "x.log",
         "problems": ["2 malformed MLPerf lines (first at line 7)"]},
    ]]  # fmt: skip
    text = "\n".join(
        report_findings.warnings(pd.DataFrame([invalid, one_bad]), comparison, {"runs": 5}, results)
    )
    assert "box: no MLPerf score: 2 runs did not converge (runs 2, 4)." in text
    assert "cherry-picking" in text
    assert "ok: run 3 did not reach the target; the MLPerf rule counts it as the slowest" in text
    assert "ok vs box: not significant. With these runs only differences of 12.0% or more" in text
    assert "ok run 1: 2 malformed MLPerf lines (first at line 7) (in x.log)." in text
    assert "aborted" not in text  # a non-converged run's status is not a problem of its own


def test_formatting_of_seconds() -> None:
    assert report_cells.fmt_s(1233.20325) == "1233.2"
    assert report_cells.fmt_s(0.0295) == "0.0295"
    assert report_cells.fmt_s(float("nan")) == "n/a" and report_cells.fmt_s(None) == "n/a"


# ---------------------------------------------------------------------------------------------
# Every table fits the page or scrolls in its own box; the leaderboard section


class _Tables(HTMLParser):
    """The page's <style> text, and for each <table> the classes of the elements around it."""

    VOID = {"br", "img", "meta", "hr", "input", "link", "col", "wbr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, set[str]]] = []
        self.tables: list[list[set[str]]] = []
        self.style = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([classes for _, classes in self.stack])
        if tag not in self.VOID:
            self.stack.append((tag, set((dict(attrs).get("class") or "").split())))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        while self.stack:  # close up to the matching tag (tolerates unclosed <p>, <li>)
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.stack and self.stack[-1][0] == "style":
            self.style += data


def scrolling_classes(css: str) -> set[str]:
    """The classes whose own CSS rule lets their content scroll sideways."""
    found = set()
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", css):
        rules = {k.strip(): v.strip() for k, _, v in (d.partition(":") for d in body.split(";"))}
        if rules.get("overflow-x") in ("auto", "scroll") or rules.get("overflow") == "auto":
            found |= {s.strip()[1:] for s in selectors.split(",") if s.strip().startswith(".")}
    return found


def golden_results(tmp_path: Path, with_leaderboard: bool) -> Path:
    """A results folder from the golden runs: the tables, real plots, and the leaderboard."""
    res = tmp_path / "results"
    res.mkdir()
    runs = pd.read_csv(GOLDEN / "runs.csv")
    runs.to_csv(res / "runs.csv", index=False)
    summary = summary_table.summarize(runs, resamples=300, seed=1)
    comparison = comparison_table.compare(runs, summary, "a-baseline", resamples=300, seed=1)
    summary.to_csv(res / "summary.csv", index=False)
    comparison.to_csv(res / "comparison.csv", index=False)
    evals = pd.DataFrame(columns=run_columns.EVAL_COLUMNS)
    plots.plot_all(runs, summary, comparison, evals, {}, res / "plots")
    if with_leaderboard:
        argv = ["--summary", str(res / "summary.csv"), "--runs", str(res / "runs.csv")]
        argv += ["--output", str(res / "leaderboard.csv"), "--bootstrap-resamples", "300"]
        assert leaderboard.main([*argv, "--plot", str(res / "plots" / "leaderboard.png")]) == 0
    return res


def test_every_table_of_the_report_is_in_a_box_that_scrolls_sideways(tmp_path: Path) -> None:
    res = golden_results(tmp_path, with_leaderboard=True)
    page = report.render("golden", res, {"benchmark": {}, "systems": {}}, generated="now")
    parsed = _Tables()
    parsed.feed(page)
    scrolling = scrolling_classes(parsed.style)
    assert scrolling  # the page's CSS has such a box
    # summary, comparison (24 columns, `significant` among the last), leaderboard, runs
    assert len(parsed.tables) >= 4
    for i, around in enumerate(parsed.tables):
        assert any(classes & scrolling for classes in around), f"table {i} can be cut off"
    assert "<th>significant</th>" in page


def test_the_leaderboard_section_shows_the_ranking_with_intervals_and_its_plot(
    tmp_path: Path,
) -> None:
    res = golden_results(tmp_path, with_leaderboard=True)
    page = report.render("golden", res, {"benchmark": {}, "systems": {}}, generated="now")
    board = pd.read_csv(res / "leaderboard.csv")
    section = page[page.index("<h2>Leaderboard</h2>") : page.index("<h2>Plots</h2>")]
    assert page.index("<h2>Comparison</h2>") < page.index("<h2>Leaderboard</h2>")
    assert "percentile bootstrap of the olympic score" in section  # its caption
    assert 'id="plot-leaderboard"' in section and "data:image/png;base64," in section
    for row in board.to_dict("records"):
        assert f'<td class="text">{row["system"]}</td>' in section
        assert f"<td>{report_cells.fmt_s(row['score_ci95_low_s'])}</td>" in section
    first = board.iloc[0]
    assert first["system"] == "b-faster" and first["rank"] == 1
    # without leaderboard.csv the page has no such section
    (res / "leaderboard.csv").unlink()
    plain = report.render("golden", res, {"benchmark": {}, "systems": {}}, generated="now")
    assert "<h2>Leaderboard</h2>" not in plain and "<h2>Plots</h2>" in plain


def test_runs_that_shared_their_cores_and_shared_seeds_are_warned_about() -> None:
    from scripts.analysis import report_findings

    results = [
        ResultRecord.of(system="a", run=1, seed=11, host_busy=0.05, load_1m=0.3),
        ResultRecord.of(system="a", run=2, seed=12, host_busy=1.2, load_1m=2.5),
        ResultRecord.of(system="a", run=3, seed=12, host_busy=None),  # a container's: unknown
        ResultRecord.from_json({"system": "b", "run": 1, "seed": 5}),  # before host_busy
    ]
    (busy,) = report_findings.shared_core_warnings(results)
    assert busy.startswith("a: run(s) 2 (1.20 cores) shared the machine")
    (seed,) = report_findings.seed_warnings(results)
    assert seed.startswith("a: runs 2, 3 share seed 12")
    warns = report_findings.warnings(
        pd.DataFrame(columns=["system"]), pd.DataFrame(columns=["significant"]), {}, results
    )
    assert busy in warns and seed in warns


# ---------------------------------------------------------------------------------------------
# Numbers before definitions; a missing value is a dash, never nan or None


def results_with_missing_values(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """The golden runs plus a system whose runs never converged (its summary row is mostly
    empty, its leaderboard row unranked), the runs.csv columns a run made before them lacks,
    and the provenance of a system made here and of an imported one, each with what its
    records leave out."""
    res = tmp_path / "results"
    res.mkdir()
    golden = pd.read_csv(GOLDEN / "runs.csv")
    never = pd.DataFrame(
        [
            {"benchmark": "golden", "system": "d-never", "run": n, "converged": False,
             "scale": "test", "fingerprint": "fp-d"}
            for n in (1, 2, 3)
        ]
    )  # fmt: skip
    runs = pd.concat([golden, never], ignore_index=True)
    runs.to_csv(res / "runs.csv", index=False)
    summary = summary_table.summarize(runs, resamples=200, seed=1)
    comparison = comparison_table.compare(runs, summary, "a-baseline", resamples=200, seed=1)
    summary.to_csv(res / "summary.csv", index=False)
    comparison.to_csv(res / "comparison.csv", index=False)
    argv = ["--summary", str(res / "summary.csv"), "--runs", str(res / "runs.csv")]
    assert leaderboard.main([*argv, "--output", str(res / "leaderboard.csv")]) == 0
    (res / "plots").mkdir()
    for name in report.PLOTS:
        (res / "plots" / f"{name}.png").write_bytes(b"not a real png")

    here = res / "d-never" / "run_01"
    here.mkdir(parents=True)
    result = {"system": "d-never", "run": 1, "converged": False, "seed": None, "log": None}
    (here / "result.json").write_text(json.dumps(ResultRecord.of(**result).to_json()))
    meta = {"run": 1, "backend": "local", "command": "python train.py"}
    (here / "run.json").write_text(json.dumps(RunRecord.of(**meta).to_json()))
    (res / "d-never" / "environment.json").write_text(json.dumps({"host": "box"}))
    imported = res / "e-imported" / "run_01"
    imported.mkdir(parents=True)
    meta = {"run": 1, "backend": "import", "source": "/logs/result_0.txt", "source_sha256": None}
    (imported / "run.json").write_text(json.dumps(RunRecord.of(**meta).to_json()))
    context = {
        "benchmark": {"description": "golden", "runs": 5},
        "systems": {
            "d-never": {"backend": "local", "description": None, "threads": 1},
            "e-imported": {"backend": "import", "import_dir": "/logs"},
        },
    }
    return res, context


def test_a_missing_value_is_a_dash_and_never_nan_or_none(tmp_path: Path) -> None:
    res, context = results_with_missing_values(tmp_path)
    page = report.render("golden", res, context, generated="now")
    found = [
        page[max(0, m.start() - 60) : m.end() + 20]
        for m in re.finditer(r"\b(nan|NaN|None|NaT|<NA>)\b", page)
    ]
    assert not found, found
    # c-same has no outlier runs (an empty cell of summary.csv): a dash, not "nan"
    row = re.search(r'<tr><th class="text">outlier runs</th>(.*?)</tr>', page)
    assert row is not None
    cells = re.findall(r"<td>(.*?)</td>", row.group(1))
    assert cells == ["5 10", "4", report_cells.MISSING, report_cells.MISSING]
    # d-never has no statistic of time to train at all
    score = re.search(r'<tr><th class="text">MLPerf score \(s\)</th>(.*?)</tr>', page)
    assert score is not None and score.group(1).endswith(f"<td>{report_cells.MISSING}</td>")
    # the runs table: columns a run made before them lacks
    runs_section = page[page.index("<h2>Runs</h2>") : page.index("<h2>Provenance</h2>")]
    assert f'<td class="text">{report_cells.MISSING}</td>' in runs_section
    assert "n/a" not in runs_section and "<td></td>" not in runs_section
    # the leaderboard: d-never unranked
    board = page[page.index("<h2>Leaderboard</h2>") : page.index("<h2>Plots</h2>")]
    assert f'<tr><td>{report_cells.MISSING}</td><td class="text">d-never</td>' in board


def test_provenance_asks_the_backend_whether_runs_are_imported(tmp_path: Path) -> None:
    res, context = results_with_missing_values(tmp_path)
    page = report.render("golden", res, context, generated="now")
    provenance = page[page.index("<h2>Provenance</h2>") : page.index("<h2>Methods</h2>")]
    local, imported = provenance.split("<h3>e-imported</h3>")
    assert "<dt>host</dt><dd>box</dd>" in local and "import_dir" not in local
    assert "<dt>CPU</dt>" not in local  # environment.json says nothing of it
    assert "<dt>import_dir</dt><dd>/logs</dd>" in imported and "<dt>host</dt>" not in imported
    assert "<dt>run 01</dt><dd>/logs/result_0.txt</dd>" in imported  # no sha256 recorded


def test_the_column_glossaries_come_after_their_tables_folded(tmp_path: Path) -> None:
    res = golden_results(tmp_path, with_leaderboard=False)
    page = report.render("golden", res, {"benchmark": {}, "systems": {}}, generated="now")
    for table, next_heading in (("Summary", "Comparison"), ("Comparison", "Plots")):
        section = page[page.index(f"<h2>{table}</h2>") : page.index(f"<h2>{next_heading}</h2>")]
        glossary = section.index('<details class="glossary"><summary>What the columns mean')
        assert section.index("<table>") < glossary  # the numbers first
        assert section.index("</table>") < glossary
        assert "<li>" not in section[:glossary]  # no definition above the table
    summary = page[page.index("<h2>Summary</h2>") : page.index("<h2>Comparison</h2>")]
    assert "One row per system." in summary[summary.index("<details") :]


def test_a_cell_without_a_value_is_a_dash_whatever_its_format() -> None:
    dash = report_cells.MISSING
    for fmt in report_cells.FORMATS.values():
        for missing in (None, float("nan"), pd.NA, "", "  "):
            assert report_cells.cell(missing, fmt) == dash
    assert report_cells.cell(3.0, report_cells.FORMATS["int"]) == "3"
    assert report_cells.cell("a<b", report_cells.esc) == "a&lt;b"


def test_sentences_say_n_a_for_a_missing_value_and_a_run_number_without_decimals() -> None:
    row = {**SUMMARY_ROW, "valid": False, "reason": float("nan"), "unstable": False}
    row["outlier_runs"] = None
    lines, compared = report_findings.verdicts(pd.DataFrame([row]), pd.DataFrame(), "")
    assert lines == ["box: no MLPerf score: n/a"] and not compared
    dropped = {**SUMMARY_ROW, "n_converged": 4, "unstable": False, "dropped_slowest_run": 3.0}
    (warning,) = [w for w in report_findings.system_warnings(dropped, 0) if "did not" in w]
    assert warning.startswith("box: run 3 did not reach the target")
    result = ResultRecord.of(system="box", run=2, converged=True, problems=["odd"])
    warns = report_findings.warnings(pd.DataFrame(columns=["system"]), pd.DataFrame(), {}, [result])
    assert "box run 2: odd." in warns  # a result.json without a log names none
