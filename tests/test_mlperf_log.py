"""Tests of scripts/mlperf/log_parser.py and outcome.py on a real MLPerf v0.6 excerpt and on
generated logs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from scripts.mlperf import log_parser
from scripts.mlperf.log_events import ParsedLog
from scripts.mlperf.log_parser import parse_file, parse_text
from scripts.mlperf.outcome import run_outcome

DATA = Path(__file__).resolve().parent / "data"
EXCERPT = DATA / "v06_dgx1_result_0_excerpt.txt"  # NVIDIA v0.6 GNMT, DGX-1, result_0.txt
GNMT_TARGET = 24.0  # BLEU


# ---------------------------------------------------------------------------
# helpers to write logs in the test


def mllog_line(key: str, value: Any, time_ms: int, prefix: str = "", **metadata: Any) -> str:
    rec = {
        "namespace": "",
        "time_ms": time_ms,
        "event_type": "POINT_IN_TIME",
        "key": key,
        "value": value,
        "metadata": {"file": "train.py", "lineno": 1, **metadata},
    }
    return f"{prefix}:::MLLOG {json.dumps(rec)}"


def mll_line(key: str, value: Any, time_s: float, prefix: str = "", **metadata: Any) -> str:
    payload = {"value": value, "metadata": {"file": "train.py", "lineno": 1, **metadata}}
    return f"{prefix}:::MLL {time_s:.3f} {key}: {json.dumps(payload)}"


T0_MS = 1_600_000_000_000  # an epoch time in ms


def mllog_run(
    evals: list[float],
    status: str | None = "success",
    prefix: str = "",
    epoch_s: int = 300,
) -> list[str]:
    """A generated mllog run with one eval_accuracy per epoch, like the GNMT logs."""
    t = T0_MS
    lines = [
        "some start-up noise",
        mllog_line("submission_benchmark", "gnmt", t, prefix),
        mllog_line("submission_status", "onprem", t, prefix),
        mllog_line("seed", 1234, t, prefix),
        mllog_line("init_start", None, t, prefix),
        mllog_line("init_stop", None, t + 20_000, prefix),
        mllog_line("run_start", None, t + 20_001, prefix),
    ]
    t += 20_001
    for ep, acc in enumerate(evals, 1):
        lines.append(mllog_line("epoch_start", None, t + 1, prefix, epoch_num=ep))
        t += epoch_s * 1000
        lines.append(mllog_line("epoch_stop", None, t + 1, prefix, epoch_num=ep))
        lines.append(f"{prefix}TRAIN [{ep}] Loss/tok 3.1 noise")
        t += 2000
        lines.append(mllog_line("eval_accuracy", acc, t, prefix, epoch_num=ep))
    if status is not None:
        lines.append(mllog_line("run_stop", None, t + 2, prefix, status=status))
    return lines


# ---------------------------------------------------------------------------
# the real v0.6 log


@pytest.fixture(scope="module")
def real() -> ParsedLog:
    return parse_file(EXCERPT)


def test_real_v06_excerpt_events(real: ParsedLog) -> None:
    assert real.fmt == "mll-v0.6"
    assert real.malformed_lines == 0
    assert real.malformed_line_nos == []
    assert len(real.events) == 58  # every :::MLL line of result_0.txt
    assert len(real.all("init_start")) == 8  # one per GPU rank
    first = real.first("submission_benchmark")
    assert first is not None and first.value == "gnmt" and first.line_no == 2
    start = real.first("run_start")
    assert start is not None and start.time_s == pytest.approx(1560822378.320, abs=1e-6)
    stop = real.last("run_stop")
    assert stop is not None and stop.metadata["status"] == "success"
    assert real.last("eval_accuracy").value == 24.1  # type: ignore[union-attr]
    assert real.first("no_such_key") is None and real.last("no_such_key") is None
    assert real.all("no_such_key") == []
    assert real.result_line is not None
    assert real.result_line.benchmark == "RNN_TRANSLATOR"
    assert real.result_line.wall_time_s == 1247
    assert real.result_line.org == "nvidia"
    assert real.result_line.start == "2019-06-18 01:46:01 AM"


def test_real_v06_excerpt_outcome(real: ParsedLog) -> None:
    out = run_outcome(real, GNMT_TARGET)
    # run_stop 1560823603.540 - run_start 1560822378.320
    assert out.time_to_train_s == 1225.22
    assert out.run_start_s == pytest.approx(1560822378.320)
    assert out.run_stop_s == pytest.approx(1560823603.540)
    assert out.status == "success"  # from run_stop, not submission_status "onprem"
    assert real.first("submission_status").value == "onprem"  # type: ignore[union-attr]
    assert out.converged is True
    assert out.final_quality == 24.1
    assert out.quality_target == 24.0 and out.quality_direction == "higher"
    assert out.epochs == 4
    assert out.epochs_to_converge == 4
    assert out.result_line_wall_s == 1247
    assert out.benchmark == "gnmt"
    assert out.seed is None  # v0.6 GNMT logs have no seed event
    assert [(e, v) for e, v, _ in out.eval_history] == [
        (1, 20.12),
        (2, 21.89),
        (3, 23.04),
        (4, 24.1),
    ]
    assert out.eval_history[-1][2] == pytest.approx(1560823603.538 - 1560822378.320, abs=1e-3)
    epochs = [
        1560822681.313 - 1560822378.652,
        1560822986.857 - 1560822683.389,
        1560823293.330 - 1560822988.792,
        1560823601.711 - 1560823295.127,
    ]
    assert out.time_per_epoch_s == pytest.approx(sum(epochs) / 4, abs=1e-6)
    assert out.problems == []
    d = out.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["eval_history"][0] == [1, 20.12, pytest.approx(305.066, abs=1e-3)]


def test_real_v06_excerpt_at_higher_target_does_not_converge(real: ParsedLog) -> None:
    out = run_outcome(real, 25.0)
    assert out.converged is False
    assert out.epochs_to_converge is None
    assert out.time_to_train_s == 1225.22  # the time is still reported
    assert "final eval_accuracy 24.1 does not meet target 25.0" in out.problems


# ---------------------------------------------------------------------------
# generated mllog logs


def test_generated_mllog_parses_like_v06() -> None:
    parsed = parse_text("\n".join(mllog_run([20.1, 21.9, 23.0, 24.1])))
    assert parsed.fmt == "mllog"
    assert parsed.malformed_lines == 0
    out = run_outcome(parsed, GNMT_TARGET)
    assert out.run_start_s == (T0_MS + 20_001) / 1000
    # 4 epochs of 300 s plus 2 s of eval each, plus 2 ms before run_stop
    assert out.time_to_train_s == 1208.002
    assert out.status == "success"
    assert out.converged is True
    assert out.final_quality == 24.1
    assert out.epochs == 4 and out.epochs_to_converge == 4
    assert out.time_per_epoch_s == pytest.approx(300.0)
    assert out.seed == 1234
    assert out.benchmark == "gnmt"
    assert out.result_line_wall_s is None
    assert out.problems == []
    assert out.eval_history[0] == (1, 20.1, 302.0)


def test_rank_prefix_before_markers() -> None:
    plain = parse_text("\n".join(mllog_run([23.0, 24.5])))
    pref = parse_text("\n".join(mllog_run([23.0, 24.5], prefix="0: ")))
    assert pref.fmt == "mllog" and pref.malformed_lines == 0
    assert [(e.key, e.value, e.time_s) for e in pref.events] == [
        (e.key, e.value, e.time_s) for e in plain.events
    ]
    assert run_outcome(pref, GNMT_TARGET).to_dict() == run_outcome(plain, GNMT_TARGET).to_dict()

    v06 = "\n".join(
        [
            mll_line("run_start", None, 100.0, prefix="0: "),
            mll_line("eval_accuracy", 24.2, 150.0, prefix="[1,0]<stdout>: ", epoch_num=1),
            mll_line("run_stop", None, 160.5, prefix="2019-06-18 01:46:01 ", status="success"),
        ]
    )
    out = run_outcome(parse_text(v06), GNMT_TARGET)
    assert out.time_to_train_s == 60.5 and out.converged is True


def test_garbage_and_truncated_lines_are_malformed_not_raised() -> None:
    good = mllog_run([24.5])
    lines = [
        *good[:3],
        ":::MLLOG {not json",  # line 4
        ':::MLLOG {"namespace": "", "time_ms": 16000000',  # line 5: truncated
        ":::MLL 1560822378.320 run_start: {",  # line 6: truncated
        ":::MLL garbage",  # line 7: no time/key
        ':::MLLOG {"key": "run_start", "value": null}',  # line 8: no time_ms
        ':::MLLOG ["a list"]',  # line 9: not an object
        ':::MLL 12.5 run_start: "just a string"',  # line 10: payload not an object
        "\x00\x01binary junk \ufffd",
        ":::MLLOG",  # line 12: nothing after the marker
        ":::MLLX not an event marker at all",  # ignored, not malformed
        "plain noise line",
        *good[3:],
    ]
    parsed = parse_text("\n".join(lines))
    assert parsed.malformed_lines == 8
    assert parsed.malformed_line_nos == [4, 5, 6, 7, 8, 9, 10, 12]
    out = run_outcome(parsed, GNMT_TARGET)
    assert out.converged is True  # malformed lines are reported, not fatal
    assert out.problems == ["8 malformed MLPerf lines (first at line 4)"]


def test_malformed_line_numbers_capped_at_20() -> None:
    text = "\n".join([":::MLLOG {bad"] * 25 + ["RESULT,X,,12,org,now"])
    parsed = parse_text(text)
    assert parsed.malformed_lines == 25
    assert parsed.malformed_line_nos == list(range(1, 21))
    assert parsed.fmt == "none" and parsed.events == []
    assert parsed.result_line is not None and parsed.result_line.wall_time_s == 12


def test_binary_junk_file_does_not_raise(tmp_path: Path) -> None:
    p = tmp_path / "junk.log"
    good = "\n".join(mllog_run([24.5])).encode()
    p.write_bytes(b"\xff\xfe\x80 junk\r\n" + good + b"\n:::MLLOG {\xff\xff}\n")
    parsed = parse_file(p)
    assert parsed.malformed_lines == 1
    assert run_outcome(parsed, GNMT_TARGET).converged is True


def test_crlf_line_endings() -> None:
    parsed = parse_text("\r\n".join(mllog_run([24.5])) + "\r\n")
    assert parsed.malformed_lines == 0
    assert run_outcome(parsed, GNMT_TARGET).converged is True


def test_aborted_run_does_not_converge() -> None:
    out = run_outcome(parse_text("\n".join(mllog_run([24.5], status="aborted"))), GNMT_TARGET)
    assert out.status == "aborted"
    assert out.converged is False
    assert out.epochs_to_converge is None
    assert out.time_to_train_s is not None
    assert "run_stop status is 'aborted'" in out.problems


def test_missing_run_stop() -> None:
    out = run_outcome(parse_text("\n".join(mllog_run([22.0, 23.0], status=None))), GNMT_TARGET)
    assert out.run_stop_s is None
    assert out.time_to_train_s is None
    assert out.status is None
    assert out.converged is False
    assert "no run_stop event" in out.problems


def test_missing_run_start_and_eval() -> None:
    text = mll_line("run_stop", None, 10.0, status="success")
    out = run_outcome(parse_text(text), GNMT_TARGET)
    assert out.time_to_train_s is None
    assert out.converged is False
    assert out.final_quality is None and out.epochs is None
    assert out.problems == ["no run_start event", "no eval_accuracy event"]


def test_success_below_target_is_not_converged() -> None:
    out = run_outcome(parse_text("\n".join(mllog_run([22.0, 23.1]))), GNMT_TARGET)
    assert out.status == "success"
    assert out.converged is False
    assert out.final_quality == 23.1
    assert out.epochs == 2 and out.epochs_to_converge is None
    assert out.problems == ["final eval_accuracy 23.1 does not meet target 24.0"]


def test_final_eval_counts_not_best() -> None:
    # reached the target at epoch 2 but the last eval fell below it
    out = run_outcome(parse_text("\n".join(mllog_run([23.0, 24.2, 23.9]))), GNMT_TARGET)
    assert out.final_quality == 23.9 and out.converged is False


def test_direction_lower() -> None:
    parsed = parse_text("\n".join(mllog_run([9.0, 6.0, 4.9])))  # e.g. perplexity
    out = run_outcome(parsed, 5.0, direction="lower")
    assert out.quality_direction == "lower"
    assert out.converged is True
    assert out.epochs_to_converge == 3
    out = run_outcome(parsed, 4.0, direction="lower")
    assert out.converged is False
    assert out.problems == ["final eval_accuracy 4.9 does not meet target 4.0 (lower is better)"]
    with pytest.raises(ValueError, match="direction"):
        run_outcome(parsed, 5.0, direction="up")


def test_mixed_formats() -> None:
    lines = [
        mll_line("run_start", None, 1_600_000_000.0),
        mllog_line("eval_accuracy", 24.5, 1_600_000_100_000, epoch_num=1),
        mll_line("run_stop", None, 1_600_000_100.25, status="success"),
    ]
    parsed = parse_text("\n".join(lines))
    assert parsed.fmt == "mixed"
    out = run_outcome(parsed, GNMT_TARGET)
    assert out.time_to_train_s == 100.25 and out.converged is True
    assert parse_text("no events here\n").fmt == "none"


def test_repeated_run_start_and_run_stop_at_the_same_time_are_one_and_last_result_line() -> None:
    """A rank printing the event twice at the same time is accepted (the compliance checker
    only warns about repeats of the same value); first run_start, last run_stop."""
    lines = [
        mll_line("run_start", None, 100.0),
        mll_line("run_start", None, 100.0),
        mll_line("eval_accuracy", 25.0, 150.0, epoch_num=1),
        mll_line("run_stop", None, 200.0, status="aborted"),
        mll_line("run_stop", None, 200.0, status="success"),
        "RESULT,RNN_TRANSLATOR,,90,nvidia,2019-06-18 01:46:01 AM",
        "RESULT,RNN_TRANSLATOR,,123.5,nvidia,2019-06-18 01:50:00 AM",
    ]
    parsed = parse_text("\n".join(lines))
    out = run_outcome(parsed, GNMT_TARGET)
    assert out.log_problems == [] and out.valid_log
    assert out.time_to_train_s == 100.0
    assert out.status == "success" and out.converged is True
    assert out.result_line_wall_s == 123.5
    assert parsed.result_line is not None and parsed.result_line.start == "2019-06-18 01:50:00 AM"


def test_repeated_run_start_or_run_stop_at_different_times_is_a_log_problem() -> None:
    """Taking the first of two run_starts silently would change the score (1225 s -> 1603 s)."""
    lines = [
        mll_line("run_start", None, 100.0),
        mll_line("run_start", None, 101.0),
        mll_line("eval_accuracy", 25.0, 150.0, epoch_num=1),
        mll_line("run_stop", None, 190.0, status="success"),
        mll_line("run_stop", None, 200.0, status="success"),
    ]
    out = run_outcome(parse_text("\n".join(lines)), GNMT_TARGET)
    assert out.log_problems == [
        "2 run_start events at different times (100.0, 101.0; lines 1, 2): "
        "MLPerf requires exactly one",
        "2 run_stop events at different times (190.0, 200.0; lines 4, 5): "
        "MLPerf requires exactly one",
    ]
    assert not out.valid_log and out.converged is False and out.time_to_train_s is None
    assert out.problems[:2] == out.log_problems


def test_non_numeric_final_eval() -> None:
    lines = [
        mll_line("run_start", None, 100.0),
        mll_line("eval_accuracy", 24.5, 150.0, epoch_num=1),
        mll_line("eval_accuracy", "nan?", 160.0, epoch_num=2),
        mll_line("run_stop", None, 200.0, status="success"),
    ]
    out = run_outcome(parse_text("\n".join(lines)), GNMT_TARGET)
    assert out.final_quality is None and out.converged is False
    assert out.problems == ["final eval_accuracy 'nan?' is not a number"]


def test_to_dict_is_json_serialisable_without_run_start() -> None:
    text = "\n".join(mllog_run([24.5])[7:])  # drop everything up to and including run_start
    out = run_outcome(parse_text(text), GNMT_TARGET)
    assert out.run_start_s is None
    assert out.eval_history == [(1, 24.5, None)]
    d = out.to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert d["eval_history"] == [[1, 24.5, None]]
    assert not any(isinstance(v, float) and math.isnan(v) for v in d.values())


def test_payloads_are_strict_json_and_bytes_parse_like_text() -> None:
    good = ':::MLLOG {"time_ms": 1000, "key": "run_start", "value": null, "metadata": {}}'
    lines = [
        good,
        good.replace("}}", "}} trailing"),  # extra data after the object
        good.replace('"key"', "'key'"),  # not JSON
        ':::MLL 1560822324.507 run_stop: {"value": null, "metadata": {"status": "success"}}  ',
        ":::MLL 1560822324.507 run_stop: [1, 2]",  # not an object
    ]
    text = "noise\n" + "\n".join(lines) + "\n\xe9 RESULT, gnmt, 12.5, NVIDIA, 2019\n"
    parsed = log_parser.parse_text(text)
    assert [e.key for e in parsed.events] == ["run_start", "run_stop"]
    assert [e.line_no for e in parsed.events] == [2, 5]
    assert parsed.malformed_lines == 3
    assert log_parser.parse_bytes(text.encode("utf-8")) == parsed
    assert log_parser.parse_bytes(b"\xff\xfe" + text.encode()).events == parsed.events
