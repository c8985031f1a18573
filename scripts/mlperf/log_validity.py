"""Whether a parsed MLPerf log is a valid log of a finished run: the *log problems*.

:func:`log_problems` is the one definition, for runs made here and imported ones;
:func:`log_problems_of` reads a log file and gives its problems. A run made here is checked
against what the runner knows of it besides its log (:class:`OwnRun`): the benchmark its log
must name, the trainer's wall time, the largest log it parses (:func:`own_run_problems`).
:func:`other_benchmark` says whether a log's ``submission_benchmark`` names another benchmark.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scripts.mlperf.log_events import Event, ParsedLog
from scripts.mlperf.log_parser import parse_file

__all__ = [
    "OwnRun",
    "log_problems",
    "log_problems_of",
    "other_benchmark",
    "other_benchmark_problem",
    "own_run_problems",
]

# a longer time to train (317 years) is not one: its log has a wrong clock
MAX_TIME_TO_TRAIN_S = 1e10
# a run made here: its log may be at most this large (a benchmark's max_log_bytes; a larger
# log is a log problem and is never parsed), and its time to train at most the runner's own
# wall time of the trainer plus WALL_SLACK_S + WALL_SLACK_FRACTION of it (the log's clock and
# the runner's differ by the trainer's start-up before run_start, NTP slewing at most 500 ppm,
# and the log's millisecond rounding)
DEFAULT_MAX_LOG_BYTES = 1 << 30
WALL_SLACK_S = 1.0
WALL_SLACK_FRACTION = 0.01
# how time to train is read: run_stop - run_start, or (v0.6 MiniGo) eval_result's timestamp
TIME_SOURCES = ("run_stop", "eval_result")


# Events of training and evaluation: none may come before run_start
WINDOW_KEYS = frozenset(
    (
        "epoch_start",
        "epoch_stop",
        "eval_start",
        "eval_stop",
        "eval_accuracy",
        "block_start",
        "block_stop",
    )
)


def _t(x: float) -> str:
    return repr(round(x, 3))


def _once(parsed: ParsedLog, key: str, problems: list[str]) -> list[Event]:
    """The events ``key``; a problem unless there is one, or several at the same time."""
    found = parsed.all(key)
    if not found:
        problems.append(f"no {key} event")
    else:
        times = sorted({round(ev.time_s, 3) for ev in found})
        if len(times) > 1:
            shown = ", ".join(_t(t) for t in times[:3]) + (", ..." if len(times) > 3 else "")
            lines = ", ".join(str(ev.line_no) for ev in found[:3])
            problems.append(
                f"{len(found)} {key} events at different times ({shown}; lines {lines}"
                f"{', ...' if len(found) > 3 else ''}): MLPerf requires exactly one"
            )
    return found


def log_problems(parsed: ParsedLog, time_source: str = "run_stop") -> list[str]:
    """Why ``parsed`` is not a valid MLPerf log of a finished run ([] when it is one).

    The one definition, for runs made here (a crash) and imported ones (a run without a
    result, as mlperf-logging's result summarizer counts a log that fails the compliance
    check):

    - no MLPerf event at all (not an MLPerf log);
    - no ``run_start``; with ``time_source`` "run_stop", no ``run_stop``;
    - more than one ``run_start`` (or ``run_stop``) at different times. The round's compliance
      checker requires EXACTLY_ONE of each; it only warns about repeats that log the same
      value, so the same event printed twice at the same time (to the millisecond) is
      accepted here too, and repeats at different times are not (the checker compares values,
      which are null for these events; their times decide the score);
    - ``run_stop`` before or at ``run_start``;
    - an event time that is not a finite number (``Infinity``, ``NaN``, ``1e400``);
    - a time to train that is not finite, or longer than MAX_TIME_TO_TRAIN_S (317 years);
    - an epoch, block or evaluation event before ``run_start`` (the clock stepped back, or
      the run_start is not this run's). Events after ``run_stop`` are allowed: published logs
      that pass the v5.0 compliance checker have them (stable_diffusion evaluates its
      checkpoints after run_stop; retinanet logs its last epoch_stop 1 ms after run_stop), and
      no round's checker compares them with run_stop's time.

    With ``time_source`` "eval_result" (v0.6 MiniGo: no run_stop; time to train is the
    eval_result's timestamp) only the first four rules that apply, and a non-finite timestamp,
    are checked: MiniGo evaluates its models after training.
    """
    if time_source not in TIME_SOURCES:
        raise ValueError(f"time_source must be one of {TIME_SOURCES}, got {time_source!r}")
    problems: list[str] = []
    if parsed.bad_time_lines:
        n = parsed.bad_time_lines
        problems.append(
            f"{n} event{'s' if n != 1 else ''} with a time that is not a finite number "
            f"(first at line {parsed.bad_time_line_nos[0]})"
        )
    if not parsed.events:
        return ["no MLPerf events: not an MLPerf log", *problems]
    starts = _once(parsed, "run_start", problems)
    if time_source == "eval_result":
        ev = parsed.last("eval_result")
        raw = ev.metadata.get("timestamp") if ev is not None else None
        if isinstance(raw, float) and not math.isfinite(raw):
            problems.append(f"eval_result timestamp {raw!r} is not finite")
        return problems
    stops = _once(parsed, "run_stop", problems)
    if starts and stops:
        problems += _window_problems(parsed, starts[0].time_s, stops[-1].time_s)
    return problems


def _window_problems(parsed: ParsedLog, start: float, stop: float) -> list[str]:
    """What is wrong with the run's window from run_start to run_stop (the first that
    applies): run_stop not after run_start, a time to train that is not a time, epoch or
    evaluation events before run_start."""
    if stop <= start:
        word = "before" if stop < start else "at"
        return [f"run_stop ({_t(stop)}) is {word} run_start ({_t(start)})"]
    if not stop - start < MAX_TIME_TO_TRAIN_S:
        return [
            f"time to train {stop - start:.6g} s is longer than {MAX_TIME_TO_TRAIN_S:.0e} s: "
            "not a time"
        ]
    early = [ev for ev in parsed.events if ev.key in WINDOW_KEYS and ev.time_s < start]
    if not early:
        return []
    first = early[0]
    n = len(early)
    return [
        f"{n} epoch/evaluation event{'s' if n != 1 else ''} before run_start "
        f"({_t(start)}); first: {first.key} at {_t(first.time_s)} (line {first.line_no})"
    ]


@dataclass(frozen=True, slots=True)
class OwnRun:
    """What the runner knows of a run made here besides its log, and what the log must then
    agree with (:func:`own_run_problems`): the workflow's ``benchmark`` name and the names its
    logs carry in ``submission_benchmark`` (``mlperf_name`` and ``folder_aliases``; none: not
    checked), the runner's own ``wall_s`` of the trainer (None: not checked), and the largest
    log it parses, ``max_bytes``."""

    benchmark: str
    names: tuple[str, ...] = ()
    wall_s: float | None = None
    max_bytes: int = DEFAULT_MAX_LOG_BYTES


def other_benchmark(logged: Any, names: Sequence[str]) -> bool:
    """Whether a log whose ``submission_benchmark`` is ``logged`` is the log of another
    benchmark than the one whose logs carry one of ``names`` (its ``mlperf_name`` and
    ``folder_aliases``, compared without case, as the result summarizer's
    ``_benchmark_alias``). A log that names none, or a benchmark without names, never is."""
    wanted = {str(n).lower() for n in names if n}
    return bool(logged is not None and str(logged) and wanted) and (
        str(logged).lower() not in wanted
    )


def other_benchmark_problem(logged: Any, benchmark: str, names: Sequence[str]) -> str | None:
    """Why a log whose ``submission_benchmark`` is ``logged`` is not a log of ``benchmark``
    (:func:`other_benchmark`), or None."""
    if not other_benchmark(logged, names):
        return None
    wanted = sorted({str(n).lower() for n in names if n})
    return (
        f"submission_benchmark is {str(logged)!r}, but benchmark {benchmark!r} logs "
        f"{' or '.join(repr(n) for n in wanted)}: the log of another benchmark"
    )


def own_run_problems(parsed: ParsedLog, run: OwnRun) -> list[str]:
    """What else makes the log of a run made here not a valid log of that run (on top of
    :func:`log_problems`): the log of another benchmark, or a time to train the trainer did
    not have (longer than the runner measured it running, beyond the slack above: a clock
    that jumped, or a log not written by this run)."""
    problems = []
    bench = parsed.first("submission_benchmark")
    if bench is not None and (p := other_benchmark_problem(bench.value, run.benchmark, run.names)):
        problems.append(p)
    start, stop = parsed.first("run_start"), parsed.last("run_stop")
    if run.wall_s is None or start is None or stop is None:
        return problems
    limit = run.wall_s + WALL_SLACK_S + WALL_SLACK_FRACTION * run.wall_s
    if stop.time_s - start.time_s > limit:
        problems.append(
            f"time to train {stop.time_s - start.time_s:.6g} s (run_start {_t(start.time_s)}, "
            f"run_stop {_t(stop.time_s)}) is longer than the trainer ran: {run.wall_s:.3f} s "
            f"by the runner's clock (allowed: {WALL_SLACK_S:g} s + "
            f"{WALL_SLACK_FRACTION:.0%} more)"
        )
    return problems


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.4g} {unit}"
    return f"{n} bytes"


def log_problems_of(
    path: str | os.PathLike[str], time_source: str = "run_stop", run: OwnRun | None = None
) -> list[str]:
    """:func:`log_problems` of the log file at ``path`` (and, for a run made here,
    :func:`own_run_problems`); never raises for its contents (an unreadable file is one
    problem). A log of a run made here over ``run.max_bytes`` is one problem and is not
    read at all."""
    try:
        if run is not None and (size := os.stat(path).st_size) > run.max_bytes:
            return [
                f"the log is {_size(size)} ({size} bytes), more than max_log_bytes "
                f"({_size(run.max_bytes)}): not read"
            ]
        parsed = parse_file(path)
    except OSError as exc:
        return [f"cannot read the log: {exc.strerror or exc}"]
    problems = log_problems(parsed, time_source)
    return problems if run is None else [*problems, *own_run_problems(parsed, run)]
