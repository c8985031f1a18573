"""One definition of a valid run log (scripts.mlperf.log_validity.log_problems), and what each
consumer
does with a log that is not one: a crash for a run made here (kept under logs/failed/, retried),
a run without a result for an imported one (as mlperf-logging's result summarizer counts a log
that fails the compliance check), always named in runs.csv, summary.csv and the report."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from scripts.analysis import report_findings, runs_table, summary_table
from scripts.campaign import config_checks, run_specs
from scripts.core.run_records import ResultRecord
from scripts.mlperf import log_parser, log_validity
from scripts.mlperf.log_parser import parse_file, parse_text
from scripts.mlperf.log_validity import log_problems
from scripts.mlperf.outcome import run_outcome
from scripts.run import failure, runner, seals
from scripts.run.spec import RunSpec
from tests.conftest import (
    REPO,
    copy_workflow,
    fake_campaign,
    jobs_run,
    need_fixtures,
    set_faults,
    snakemake,
)

DGX1 = Path("mlperf-v0.6-nvidia") / "dgx1_ngc19.05_pytorch" / "gnmt"
V06_STAMP = re.compile(rb"^(:::MLL )(\d+\.\d+)( run_(?:start|stop):)", re.M)


def mll(key: str, t: float, **meta: object) -> str:
    return f":::MLL {t:.3f} {key}: " + json.dumps({"value": None, "metadata": meta})


def mllog(key: str, t_ms: object, value: object = None, **meta: object) -> str:
    return (
        f':::MLLOG {{"namespace": "", "time_ms": {t_ms}, "event_type": "POINT_IN_TIME", '
        f'"key": "{key}", "value": {json.dumps(value)}, "metadata": {json.dumps(meta)}}}'
    )


def good(start: float = 100.0, stop: float = 200.0) -> list[str]:
    return [
        mll("run_start", start),
        mll("epoch_start", start + 1, epoch_num=1),
        mll("epoch_stop", start + 50, epoch_num=1),
        ':::MLL %.3f eval_accuracy: {"value": 25.0, "metadata": {"epoch_num": 1}}' % (start + 60),
        mll("run_stop", stop, status="success"),
    ]


# ---------------------------------------------------------------------------------------------
# the rule, case by case


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no MLPerf events: not an MLPerf log"),
        ("random words\n\x00\x01\xff\n", "no MLPerf events: not an MLPerf log"),
        ("\n".join(good()[1:]), "no run_start event"),
        ("\n".join(good()[:-1]), "no run_stop event"),
        (
            "\n".join(good(start=1561000000.0, stop=1560999999.0)),
            "run_stop (1560999999.0) is before run_start (1561000000.0)",
        ),
        ("\n".join(good(start=100.0, stop=100.0)), "run_stop (100.0) is at run_start (100.0)"),
        (
            "\n".join([*good(), mll("run_start", 478.0)]),
            "2 run_start events at different times (100.0, 478.0; lines 1, 6): "
            "MLPerf requires exactly one",
        ),
        (
            "\n".join([good()[0], mll("eval_accuracy", 90.0, epoch_num=0), *good()[1:]]),
            "1 epoch/evaluation event before run_start (100.0); first: eval_accuracy at 90.0 "
            "(line 2)",
        ),
        (
            "\n".join([mllog("run_start", 1000), mllog("run_stop", "Infinity", status="success")]),
            "1 event with a time that is not a finite number (first at line 2)",
        ),
        (
            "\n".join([mllog("run_start", "NaN"), mllog("run_stop", 2000, status="success")]),
            "1 event with a time that is not a finite number (first at line 1)",
        ),
        (
            "\n".join([mllog("run_start", 1000), mllog("run_stop", "1" + "0" * 400)]),
            "1 event with a time that is not a finite number (first at line 2)",
        ),
    ],
    ids=[
        "empty",
        "junk",
        "no-run_start",
        "no-run_stop",
        "stop-before-start",
        "stop-at-start",
        "duplicate-run_start",
        "eval-before-start",
        "infinity-time",
        "nan-time",
        "huge-time",
    ],
)
def test_a_log_that_is_not_a_valid_log_of_a_finished_run_is_named(text: str, problem: str) -> None:
    out = run_outcome(parse_text(text), 24.0)
    assert problem in out.log_problems
    assert not out.valid_log and out.converged is False and out.time_to_train_s is None
    assert out.problems[: len(out.log_problems)] == out.log_problems
    json.dumps(out.to_dict(), allow_nan=False)  # nothing non-finite reaches result.json


@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "NaN"])
def test_a_non_finite_value_is_not_a_quality_and_reaches_nothing(value: str) -> None:
    lines = [
        mllog("run_start", 1000),
        mllog("seed", 5, value=None).replace('"value": null', f'"value": {value}'),
        mllog("eval_accuracy", 2000, epoch_num=1).replace('"value": null', f'"value": {value}'),
        mllog("run_stop", 3000, status="success"),
    ]
    out = run_outcome(parse_text("\n".join(lines)), 24.0)
    assert out.valid_log and out.converged is False and out.final_quality is None
    assert out.seed is None and out.time_to_train_s == 2.0
    assert f"final eval_accuracy {float(value)!r} is not a number" in out.problems
    json.dumps(out.to_dict(), allow_nan=False)
    minigo = [mll("run_start", 100.0), mllog("eval_result", 200_000, timestamp=1.0)]
    minigo[1] = minigo[1].replace('"timestamp": 1.0', f'"timestamp": {value}')
    out = run_outcome(parse_text("\n".join(minigo)), 0.5, time_source="eval_result")
    assert out.converged is False and out.time_to_train_s is None
    json.dumps(out.to_dict(), allow_nan=False)


def test_an_integer_beyond_a_floats_range_is_not_a_quality_and_no_crash() -> None:
    """A value of 401 digits (float() raises OverflowError on it) is no number: the run is a
    non-converged result, never a traceback in the import or the re-parse."""
    huge = "1" + "0" * 400
    lines = [
        mllog("run_start", 1000),
        mllog("eval_accuracy", 2000, epoch_num=1).replace('"value": null', f'"value": {huge}'),
        mllog("run_stop", 3000, status="success"),
    ]
    out = run_outcome(parse_text("\n".join(lines)), 24.0)
    assert out.valid_log and out.converged is False and out.final_quality is None
    json.dumps(out.to_dict(), allow_nan=False)


def test_the_same_event_twice_at_the_same_time_is_one_event() -> None:
    lines = good()
    text = "\n".join([lines[0], lines[0], *lines[1:], lines[-1]])
    out = run_outcome(parse_text(text), 24.0)
    assert out.log_problems == [] and out.valid_log
    assert out.time_to_train_s == 100.0 and out.converged


def test_events_after_run_stop_are_allowed_as_in_published_v5_logs() -> None:
    """v5.0 stable_diffusion evaluates checkpoints after run_stop; the checker accepts it."""
    text = "\n".join([*good(), mll("eval_accuracy", 900.0, epoch_num=2)])
    assert log_problems(parse_text(text)) == []


def test_every_published_fixture_log_is_valid() -> None:
    fixtures = need_fixtures()
    logs = sorted(fixtures.rglob("result_*.txt"))
    assert len(logs) >= 80
    for log in logs:
        assert log_problems(parse_file(log)) == [], log


def test_minigo_time_source_needs_no_run_stop() -> None:
    text = (REPO / "tests/data/v06/dgx1_tensorflow_minigo_result_0.txt").read_text()
    assert log_problems(parse_text(text), "eval_result") == []
    assert log_problems(parse_text(text)) == ["no run_stop event"]


def test_lines_too_long_or_too_deep_are_malformed_never_fatal(tmp_path: Path) -> None:
    deep = ":::MLLOG " + "[" * 100_000 + "]" * 100_000
    deep_v06 = ":::MLL 150.000 x: " + '{"value": ' + "[" * 200 + "]" * 200 + "}"
    long_line = ':::MLLOG {"key": "x", "time_ms": 1, "value": "' + "y" * (2 << 20) + '"}'
    lines = [*good()[:2], deep, deep_v06, long_line, *good()[2:]]
    log = tmp_path / "log"
    log.write_text("\n".join(lines) + "\n")
    for parsed in (
        parse_file(log),
        parse_text(log.read_text()),
        log_parser.parse_bytes(log.read_bytes()),
    ):
        assert parsed.malformed_lines == 3
        assert parsed.malformed_line_nos == [3, 4, 5]
        assert [ev.line_no for ev in parsed.events] == [1, 2, 6, 7, 8]
        out = run_outcome(parsed, 24.0)
        assert out.valid_log and out.converged and out.time_to_train_s == 100.0


def test_a_long_line_across_blocks_is_skipped_with_its_line_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small blocks and a small line cap: the streaming paths, with exact line numbers."""
    monkeypatch.setattr(log_parser, "CHUNK_BYTES", 64)
    monkeypatch.setattr(log_parser, "MAX_LINE_BYTES", 100)
    lines = [
        *good()[:2],
        ":::MLL " + "z" * 500,
        "x" * 300,
        "RESULT,GNMT,,90,nvidia,now",
        *good()[2:],
    ]
    log = tmp_path / "log"
    log.write_bytes(("\n".join(lines)).encode())  # no newline at the end
    parsed = parse_file(log)
    assert parsed.malformed_line_nos == [3]  # the long line with a marker; the other is ignored
    assert [ev.line_no for ev in parsed.events] == [1, 2, 6, 7, 8]
    assert parsed.result_line is not None and parsed.result_line.wall_time_s == 90
    same = parse_text(log.read_text())
    assert (same.events, same.malformed_line_nos) == (parsed.events, parsed.malformed_line_nos)


# ---------------------------------------------------------------------------------------------
# scoring and tables


def result(run: int, t: float | None, conv: bool, problems: list[str] | None = None) -> dict:
    return {
        "benchmark": "b",
        "system": "s",
        "run": run,
        "time_to_train_s": t,
        "converged": conv,
        "scale": "test",
        "fingerprint": "fp",
        "log": f"results/b/s/run_{run:02d}/mlperf.log",
        "log_problems": problems or [],
        "problems": problems or [],
    }


def test_runs_csv_and_summary_name_the_log_problems(tmp_path: Path) -> None:
    rs = [result(i, 100.0 + i, True) for i in range(1, 6)]
    rs.append(result(6, None, False, ["no MLPerf events: not an MLPerf log", "x"]))
    # a row that says converged with a negative time, as an old or edited result.json may
    rs.append(result(7, -59.0, True))
    rs.append(result(8, float("inf"), True))  # result.json's Infinity: must not crash the summary
    files = []
    for r in rs:
        f = tmp_path / f"r{r['run']}.json"
        f.write_text(json.dumps(r))
        files.append(f)
    runs = runs_table.collect(files)
    assert runs.loc[5, "log_problems"] == "no MLPerf events: not an MLPerf log; x"
    assert runs.loc[0, "log_problems"] == ""
    csv = tmp_path / "runs.csv"
    csv.write_text(runs.to_csv(index=False))
    summary = summary_table.summarize(pd.read_csv(csv), max_nonconverged=1)
    row = summary.iloc[0]
    assert row["n_log_problems"] == 1
    assert not row["valid"] and "runs 6, 7, 8" in row["reason"]  # none has a usable time
    assert row["min_s"] == 101.0  # -59 never reaches the statistics
    assert row["max_s"] == 105.0  # nor does inf
    records = [ResultRecord.from_json(r) for r in rs]
    warnings = report_findings.warnings(summary, pd.DataFrame(), {"runs": 8}, records)
    named = [w for w in warnings if "is not a valid MLPerf log" in w]
    assert named == [
        "s run 6: results/b/s/run_06/mlperf.log is not a valid MLPerf log of a finished run: "
        "no MLPerf events: not an MLPerf log; x. It counts as a run without a result (not "
        "converged, dropped as the slowest), as mlperf-logging's result summarizer counts a log "
        "that fails the compliance check."
    ]
    assert not any(w.endswith(": x (in results/b/s/run_06/mlperf.log).") for w in warnings)


def test_plots_never_see_an_invalid_log_or_an_unusable_time() -> None:
    from scripts.analysis import plots

    runs = pd.DataFrame(
        {
            "system": ["s"] * 4,
            "run": [1, 2, 3, 4],
            "time_to_train_s": [100.0, -59.0, float("inf"), 110.0],
            "converged": [True, True, True, False],
            "log_problems": ["", float("nan"), "", "run_stop (1.0) is before run_start (2.0)"],
        }
    )
    evals = pd.DataFrame({"system": ["s", "s"], "run": [1, 4], "time_s": [5.0, -3.0]})
    kept, kept_evals = plots.plottable(runs, evals)
    assert kept["run"].tolist() == [1, 2, 3]
    assert (
        kept["time_to_train_s"].iloc[0] == 100.0 and kept["time_to_train_s"].iloc[1:].isna().all()
    )
    assert kept_evals["run"].tolist() == [1]


# ---------------------------------------------------------------------------------------------
# runs made here: a crash, its log kept, retried


def spec(command: str, retries: int = 0) -> RunSpec:
    return RunSpec(
        benchmark="b",
        system="s",
        run=1,
        seed=7,
        command=command,
        env={},
        timeout_s=60,
        threads=1,
        scale="test",
        config_fingerprint="cfp",
        comparability={},
        retries=retries,
    )


@pytest.mark.parametrize(
    ("logged", "names", "problem"),
    [
        (
            "bert",
            ("gnmt",),
            "submission_benchmark is 'bert', but benchmark 'b' logs 'gnmt': "
            "the log of another benchmark",
        ),
        (
            "bert",
            ("maskrcnn", "mask"),
            "submission_benchmark is 'bert', but benchmark 'b' logs "
            "'mask' or 'maskrcnn': the log of another benchmark",
        ),
        ("MASK", ("maskrcnn", "mask"), None),  # a folder alias, any case
        ("gnmt", ("gnmt",), None),
        (None, ("gnmt",), None),  # no submission_benchmark: nothing to compare
        ("bert", (), None),  # a benchmark without mlperf_name: not checked
    ],
    ids=["other", "other-with-aliases", "alias", "same", "not-logged", "no-names"],
)
def test_a_log_of_a_run_made_here_names_this_benchmark(
    logged: str | None, names: tuple[str, ...], problem: str | None
) -> None:
    named = f':::MLL 99.000 submission_benchmark: {{"value": "{logged}"}}'
    lines = [] if logged is None else [named]
    parsed = parse_text("\n".join([*lines, *good(stop=100.5)]))
    got = log_validity.own_run_problems(parsed, log_validity.OwnRun("b", names, wall_s=1.0))
    assert got == ([problem] if problem else [])


@pytest.mark.parametrize(
    ("start", "stop", "wall_s", "problem"),
    [
        (
            1561000000.0,
            4102444800.0,  # 2100-01-01
            0.037,
            "time to train 2.54144e+09 s (run_start 1561000000.0, run_stop 4102444800.0) is "
            "longer than the trainer ran: 0.037 s by the runner's clock (allowed: 1 s + 1% more)",
        ),
        (100.0, 103.1, 100.0, None),  # not a problem: 1 s + 1% of 100 s is 2 s
        (100.0, 1.6, 0.6, None),  # within 1 s: run_stop at run_start is log_problems' rule
        (
            100.0,
            303.5,
            200.0,
            "time to train 203.5 s (run_start 100.0, run_stop 303.5) is longer than the trainer "
            "ran: 200.000 s by the runner's clock (allowed: 1 s + 1% more)",
        ),
    ],
    ids=["year-2100", "within-1%", "within-1s", "beyond"],
)
def test_a_time_to_train_longer_than_the_runner_saw_the_trainer_run_is_a_log_problem(
    start: float, stop: float, wall_s: float, problem: str | None
) -> None:
    parsed = parse_text("\n".join([mll("run_start", start), mll("run_stop", stop)]))
    got = log_validity.own_run_problems(parsed, log_validity.OwnRun("b", wall_s=wall_s))
    assert got == ([problem] if problem else [])
    assert log_validity.own_run_problems(parsed, log_validity.OwnRun("b")) == []  # unknown wall


def test_a_log_over_max_log_bytes_is_named_and_never_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "mlperf.log"
    log.write_text("\n".join(good(stop=100.5)) + "\n" + "x" * 3000)
    size = log.stat().st_size

    def no_read(_path: object) -> None:
        raise AssertionError("a log over max_log_bytes is read")

    monkeypatch.setattr(log_validity, "parse_file", no_read)
    assert log_validity.log_problems_of(log, run=log_validity.OwnRun("b", max_bytes=1000)) == [
        f"the log is {size / 1024:.4g} KiB ({size} bytes), more than max_log_bytes "
        "(1000 bytes): not read"
    ]


def test_a_run_whose_log_is_over_max_log_bytes_is_a_crash_and_its_log_kept(
    tmp_path: Path, paths: dict[str, Path]
) -> None:
    script = tmp_path / "emit.py"
    script.write_text(f"print({chr(10).join(good(stop=100.5))!r}); print('x' * 5000)\n")
    s = spec(f"{sys.executable} {script}")
    s = RunSpec(**{**{f: getattr(s, f) for f in s.__dataclass_fields__}, "max_log_bytes": 4096})
    with pytest.raises(failure.RunFailed) as info:
        runner.execute(s, **paths)
    assert re.match(
        r"trainer exited 0 but its log is not a valid MLPerf log: the log is 5\.\d+ KiB "
        r"\(\d+ bytes\), more than max_log_bytes \(4 KiB\): not read; log kept as ",
        str(info.value),
    )
    (kept,) = paths["failed_dir"].glob("run_01.attempt1.*.log")
    assert "x" * 5000 in kept.read_text() and not paths["meta_path"].exists()


def test_the_config_says_what_a_runs_log_must_name_and_how_large_it_may_be(
    tmp_path: Path,
) -> None:
    """A benchmark's mlperf_name and folder_aliases and its max_log_bytes (default 1 GiB)
    reach the run's spec, which the runner checks the log against."""
    overlay = tmp_path / "o.yaml"
    overlay.write_text(
        "benchmarks: {gnmt: {mlperf_name: gnmt, folder_aliases: [nmt], max_log_bytes: 5000}}"
    )
    kw = {"python": "python", "dataset_dir": "d", "run_dir": "r"}
    s = run_specs.run_spec(config_checks.load_campaign([overlay]), "gnmt", "local", 1, **kw)
    assert (s.mlperf_names, s.max_log_bytes) == (["gnmt", "nmt"], 5000)
    s = run_specs.run_spec(config_checks.load_campaign([]), "gnmt", "local", 1, **kw)
    assert (s.mlperf_names, s.max_log_bytes) == ([], 1 << 30)  # the embedded gnmt: no name


def test_a_failing_parser_keeps_the_log_as_a_failed_log(
    tmp_path: Path, paths: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the parser raising (as a RecursionError did before it was caught) makes
    the attempt a crash whose log is kept, never a deleted log."""
    script = tmp_path / "emit.py"
    script.write_text("print('some output')\n")

    def broken(_path: object, **_run: object) -> list[str]:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(failure, "log_problems_of", broken)
    with pytest.raises(failure.RunFailed, match="could not be parsed .RecursionError"):
        runner.execute(spec(f"{sys.executable} {script}"), **paths)
    (kept,) = paths["failed_dir"].glob("run_01.attempt1.*.log")
    assert "some output" in kept.read_text() and "RecursionError" in kept.read_text()


def test_a_log_that_cannot_be_sealed_is_kept_as_a_failed_log(
    tmp_path: Path, paths: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: sealing the finished log fails (e.g. it changed while it was hashed):
    the attempt is a crash whose log is kept, never a log that Snakemake deletes unkept."""
    script = tmp_path / "emit.py"
    # a run of 0.5 s: a log's time to train is never longer than the runner saw it run
    script.write_text(f"print({chr(10).join(good(stop=100.5))!r})\n")

    def broken(_meta: object, _log: object) -> None:
        raise seals.SealError("mlperf.log changed while it was sealed")

    monkeypatch.setattr(runner.seals, "add_seal", broken)
    with pytest.raises(failure.RunFailed, match="could not be sealed"):
        runner.execute(spec(f"{sys.executable} {script}"), **paths)
    (kept,) = paths["failed_dir"].glob("run_01.attempt1.*.log")
    assert "run_start" in kept.read_text() and "could not be sealed" in kept.read_text()


@pytest.mark.workflow
def test_local_runs_with_invalid_logs_are_crashes_kept_and_retried(workflow_copy: Path) -> None:
    """Fake trainer: its clock steps back (run_stop before run_start), a second run_start, an
    Infinity time, another benchmark's submission_benchmark, a run_stop in the year 2100 (a
    time to train longer than the runner saw it run): each exits 0 and is a crash, tried twice
    (retries: 1), both logs kept. A line nested 100,000 deep is a malformed line of a run that
    is still a result; that run also leaves a setsid grandchild writing to its log, which is
    killed before the log is sealed, so the next invocation finds the run intact."""
    wf = workflow_copy
    faults = {
        "clock_back": [1],
        "dup_run_start": [2],
        "infinity": [3],
        "deep_json": [4],
        "stray": [4],
        "other_benchmark": [5],
        "future_stop": [6],
    }
    overlay = fake_campaign(wf, runs=6, faults=faults)
    data = yaml.safe_load(overlay.read_text())
    data["systems"] = {"local": {"retries": 1}}
    data["benchmarks"]["fake"]["mlperf_name"] = "fake"  # its logs name it so
    overlay.write_text(yaml.safe_dump(data))
    target = "results/fake/summary.csv"
    try:
        proc = snakemake(wf, target, "--cores", "1", "--keep-going", "--configfile", str(overlay))
        stray = int((wf / "strays/run_4.pid").read_text())
        assert not Path(f"/proc/{stray}").exists()  # killed and reaped by the runner
    finally:
        for pidfile in (wf / "strays").glob("*.pid"):  # never leave it running, whatever failed
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
    assert proc.returncode != 0
    failed = wf / "logs/failed/fake/local"
    reasons = {
        1: r"run_stop \(\d+\.\d+\) is before run_start \(\d+\.\d+\)",
        2: r"2 run_start events at different times",
        3: r"1 event with a time that is not a finite number \(first at line \d+\)",
        5: "submission_benchmark is 'bert', but benchmark 'fake' logs 'fake': the log of another "
        "benchmark",
        6: r"time to train 2\.\d+e\+09 s \(run_start \d+\.\d+, run_stop 4102444800\.0\) is "
        r"longer than the trainer ran: \d+\.\d{3} s by the runner's clock \(allowed: 1 s \+ "
        r"1% more\)",
    }
    for run, reason in reasons.items():
        kept = sorted(failed.glob(f"run_{run:02d}.attempt*.log"))
        assert [k.name.split(".")[1] for k in kept] == ["attempt1", "attempt2"]  # retried
        for k in kept:
            text = k.read_text()
            assert re.search("not a valid MLPerf log: " + reason, text), text[-500:]
            assert ":::MLLOG" in text  # the trainer's log itself
        assert not (wf / f"results/fake/local/run_{run:02d}/result.json").exists()
    deep = json.loads((wf / "results/fake/local/run_04/result.json").read_text())
    assert deep["converged"] is True and deep["malformed_lines"] == 1 and deep["log_problems"] == []
    assert not list(failed.glob("run_04.*"))
    meta = json.loads((wf / "results/fake/local/run_04/run.json").read_text())
    assert meta["containment"] in ("cgroup", "subreaper") and meta["containment_killed"] >= 1

    set_faults(wf, {})
    again = snakemake(wf, target, "--cores", "1", "--configfile", str(overlay))
    assert again.returncode == 0, again.stderr[-3000:]  # run 4's log is as it was sealed
    trained = sorted(j for j in jobs_run(again.stderr) if j.startswith("train_run"))
    assert trained == [f"train_run benchmark=fake, system=local, run=0{r}" for r in (1, 2, 3, 5, 6)]
    summary = pd.read_csv(wf / target).iloc[0]
    assert summary["n_runs"] == 6 and summary["n_log_problems"] == 0 and summary["valid"]


# ---------------------------------------------------------------------------------------------
# imported runs: a run without a result, as the result summarizer counts it


def import_folder(tmp_path: Path) -> Path:
    """A copy of NVIDIA's published DGX-1 v0.6 GNMT folder, to be mutated."""
    fixtures = need_fixtures()
    system = tmp_path / "dgx1_ngc19.05_pytorch"
    shutil.copytree(fixtures / DGX1, system / "gnmt")
    return system


def run_import(tmp_path: Path, system: Path, target: str) -> Path:
    wf = copy_workflow(tmp_path / "wf")
    overlay = wf / "import.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {
                "campaign": {"benchmarks": ["gnmt-v0.6"], "reference_system": "nvidia-dgx1-v0.6"},
                "systems": {"nvidia-dgx1-v0.6": {"import_dir": str(system)}},
            }
        )
    )
    args = ["--cores", "1", "--configfile", "config/systems/nvidia-dgx1-v0.6.yaml", str(overlay)]
    proc = snakemake(wf, target, *args)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return wf / "results" / "gnmt-v0.6"


def summarizer_score_s(folder: Path, cwd: Path) -> float | None:
    """mlperf-logging's own result summarizer on the folder (ruleset 0.6.0). Its v0.6 parser
    reads times in seconds, so its "minutes" are seconds / 60,000."""
    code = (
        "import json, sys\n"
        "from mlperf_logging.result_summarizer import result_summarizer as rs\n"
        "r = rs._compute_strong_score_standalone('gnmt', 'dgx1', False, sys.argv[1], "
        "'training', '0.6.0', desc={'submitter': 'NVIDIA'}, return_full_scores=True)\n"
        "print(json.dumps(r[2]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(folder)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": ""},
    )
    score = json.loads(proc.stdout.strip().splitlines()[-1])
    return None if score is None else score * 60_000


@pytest.mark.workflow
def test_random_bytes_among_nine_published_logs_score_as_the_result_summarizer_does(
    tmp_path: Path,
) -> None:
    system = import_folder(tmp_path)
    first = system / "gnmt" / "result_0.txt"
    first.write_bytes(os.urandom(first.stat().st_size))
    res = run_import(tmp_path, system, "results/gnmt-v0.6/report.html")
    expected = summarizer_score_s(system / "gnmt", tmp_path)
    assert expected is not None
    summary = pd.read_csv(res / "summary.csv").iloc[0]
    assert summary["valid"] and summary["n_log_problems"] == 1 and summary["n_converged"] == 9
    assert summary["score_s"] == pytest.approx(expected, abs=1e-6)
    assert summary["dropped_slowest_run"] == 1  # the random bytes, dropped as the slowest
    runs = pd.read_csv(res / "runs.csv").set_index("run")
    assert runs.loc[1, "log_problems"] == "no MLPerf events: not an MLPerf log"
    assert not runs.loc[1, "converged"] and pd.isna(runs.loc[1, "time_to_train_s"])
    assert runs.loc[2:, "log_problems"].isna().all()  # empty cells
    page = (res / "report.html").read_text()
    assert (
        "nvidia-dgx1-v0.6 run 1: results/gnmt-v0.6/nvidia-dgx1-v0.6/run_01/mlperf.log is " in page
    )
    assert "not a valid MLPerf log of a finished run: no MLPerf events" in page


@pytest.mark.workflow
def test_three_published_logs_with_run_stop_before_run_start_make_the_score_invalid(
    tmp_path: Path,
) -> None:
    """A faithful mutation of three DGX-1 logs (the fixture has no such log): the run_start and
    run_stop times swapped, every other byte kept, as a clock that stepped back would write."""
    system = import_folder(tmp_path)
    for n in (1, 4, 7):
        log = system / "gnmt" / f"result_{n}.txt"
        data = log.read_bytes()
        stamps = [m.group(2) for m in V06_STAMP.finditer(data)]
        assert len(stamps) == 2
        swapped = {stamps[0]: stamps[1], stamps[1]: stamps[0]}
        log.write_bytes(
            V06_STAMP.sub(lambda m, s=swapped: m.group(1) + s[m.group(2)] + m.group(3), data)
        )
    res = run_import(tmp_path, system, "results/gnmt-v0.6/summary.csv")
    summary = pd.read_csv(res / "summary.csv").iloc[0]
    assert not summary["valid"] and pd.isna(summary["score_s"])
    assert summary["n_log_problems"] == 3
    assert summary["reason"] == "3 runs did not converge (runs 2, 5, 8); MLPerf allows at most 1"
    runs = pd.read_csv(res / "runs.csv").set_index("run")
    assert re.fullmatch(
        r"run_stop \(1560822\d{3}\.\d+\) is before run_start \(156082\d{4}\.\d+\)",
        runs.loc[2, "log_problems"],
    )
    assert runs.loc[[2, 5, 8], "time_to_train_s"].isna().all()


def test_a_second_run_start_in_a_published_log_is_named_not_taken() -> None:
    """DGX-1 result_0.txt (1225.22 s) with a run_start 378 s earlier inserted: taking the first
    one silently would make it 1603.22 s."""
    data = (need_fixtures() / DGX1 / "result_0.txt").read_bytes()
    assert run_outcome(log_parser.parse_bytes(data), 24.0).time_to_train_s == 1225.22
    start = next(m for m in V06_STAMP.finditer(data) if m.group(3) == b" run_start:")
    line_end = data.index(b"\n", start.start()) + 1
    line = data[start.start() : line_end]
    early = line.replace(start.group(2), b"%.3f" % (float(start.group(2)) - 378))
    out = run_outcome(
        log_parser.parse_bytes(data[: start.start()] + early + data[start.start() :]), 24.0
    )
    n = data[: start.start()].count(b"\n") + 1  # the line of the inserted run_start
    assert out.log_problems == [
        "2 run_start events at different times (1560822000.32, 1560822378.32; lines "
        f"{n}, {n + 1}): MLPerf requires exactly one"
    ]
    assert out.time_to_train_s is None and not out.converged
