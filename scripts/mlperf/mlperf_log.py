"""The one MLPerf log parser of this project.

Reads both MLPerf logging formats, line by line, tolerant of junk:

* current ``mllog`` (v0.7 and later)::

      :::MLLOG {"namespace": "", "time_ms": 1593..., "event_type": "POINT_IN_TIME",
                "key": "run_start", "value": null, "metadata": {...}}

* v0.6 ``:::MLL``::

      :::MLL 1560822378.320 run_start: {"value": null, "metadata": {...}}

  plus the v0.6 run-script summary line
  ``RESULT,<benchmark>,<seed>,<wall seconds>,<user/org>,<start time>`` (MiniGo's run script
  leaves the seed field out; MXNet ResNet prints one such line per process; a ``set -x`` trace
  of ``echo 'RESULT,...'`` is not a RESULT line).

Anything may precede a marker (rank prefixes such as ``0: ``, timestamps).  Lines that
contain a marker but cannot be parsed (bad or truncated JSON, missing fields) are
counted as malformed and never raise; every other line is ignored.

Line numbers are 1-based and count ``\\n``-separated lines, so they match ``grep -n``
and editors even when a log contains carriage returns or form feeds.

Bounded work and memory for any input: ``parse_file`` streams the file in blocks of
``CHUNK_BYTES`` (never the whole log in memory); a line longer than ``MAX_LINE_BYTES`` that
holds a marker is one malformed line (its bytes are skipped, not kept); a payload nested deeper
than ``MAX_JSON_DEPTH`` is malformed (so no RecursionError, here or in whatever reads the
value later); an event whose time is not a finite number of an ordinary size (``Infinity``,
``NaN``, ``1e400``) is malformed too, and counted in ``ParsedLog.bad_time_lines``, which
:func:`log_problems` reports.

``run_outcome`` turns a parsed log into the quantities the benchmark reports:
time to train (``run_stop - run_start``, the MLPerf score of one run; for v0.6 MiniGo, the
``timestamp`` of the ``eval_result`` event), status, convergence against a quality target,
epochs, and a list of human-readable problems; among them the *log problems*
(:func:`log_problems`), which make the log not a valid MLPerf log of a finished run.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Event",
    "ParsedLog",
    "ResultLine",
    "RunOutcome",
    "OwnRun",
    "log_problems",
    "log_problems_of",
    "other_benchmark",
    "other_benchmark_problem",
    "parse_bytes",
    "parse_file",
    "parse_text",
    "run_outcome",
]

MAX_MALFORMED_LINE_NOS = 20
# parse_file reads this much at a time; a marker line longer than MAX_LINE_BYTES is malformed
CHUNK_BYTES = 4 << 20
MAX_LINE_BYTES = 1 << 20
# deeper JSON payloads are malformed (a real MLPerf payload is nested 3 or 4 deep)
MAX_JSON_DEPTH = 64
# |time| at or above this (seconds or ms) is not a time: catches inf, nan and 1e400 at once
_TIME_LIMIT = 1e300
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

# ``RESULT,<benchmark>,<seed>,<wall seconds>,<org>,<start>``
_RESULT_RE = re.compile(r"RESULT,([^,]*),([^,]*),[ \t]*([0-9]+(?:\.[0-9]*)?)[ \t]*,([^,]*),(.*)")
# ``RESULT,<benchmark>,<wall seconds>,<org>,<start>`` (v0.6 MiniGo: no seed field)
_RESULT_NO_SEED_RE = re.compile(r"RESULT,([^,]*),[ \t]*([0-9]+(?:\.[0-9]*)?)[ \t]*,([^,]*),(.*)")
# how time to train is read: run_stop - run_start, or (v0.6 MiniGo) eval_result's timestamp
TIME_SOURCES = ("run_stop", "eval_result")

# the C scanner under json.loads, without its Python wrappers (about a third of the parse time
# of a GNMT log); _load_object() adds back what loads checks: whitespace and trailing data
_scan_json = json.JSONDecoder().scan_once


def _load_object(text: str) -> Any:
    """json.loads(text), faster for the short payloads of MLPerf lines."""
    text = text.strip()
    try:
        obj, end = _scan_json(text, 0)
    except StopIteration:
        raise ValueError("invalid JSON") from None
    if end != len(text):
        raise ValueError("extra data after the JSON value")
    return obj


@dataclass(slots=True)
class Event:
    """One MLPerf log event."""

    key: str
    value: Any
    time_s: float  # seconds since the epoch (time_ms / 1000 for mllog)
    metadata: dict[str, Any]
    line_no: int  # 1-based


@dataclass(slots=True)
class ResultLine:
    """The v0.6 ``RESULT,...`` line written by the reference run scripts."""

    benchmark: str
    wall_time_s: float
    org: str
    start: str
    seed: str = ""  # the seed field ("" when empty or absent)


def _result_line(line: str) -> ResultLine | None:
    """The RESULT line in ``line``, or None (also for a shell trace that echoes one)."""
    pos = line.find("RESULT,")
    if pos < 0 or "echo" in line[:pos]:
        return None
    m = _RESULT_RE.match(line, pos)
    if m is not None:
        return ResultLine(
            benchmark=m.group(1).strip(),
            wall_time_s=float(m.group(3)),
            org=m.group(4).strip(),
            start=m.group(5).strip(),
            seed=m.group(2).strip(),
        )
    m = _RESULT_NO_SEED_RE.match(line, pos)
    if m is not None:
        return ResultLine(
            benchmark=m.group(1).strip(),
            wall_time_s=float(m.group(2)),
            org=m.group(3).strip(),
            start=m.group(4).strip(),
        )
    return None


@dataclass(slots=True)
class ParsedLog:
    """All events of one log, in file order."""

    events: list[Event]
    result_line: ResultLine | None  # the last RESULT line
    malformed_lines: int
    malformed_line_nos: list[int]  # the first MAX_MALFORMED_LINE_NOS, 1-based
    fmt: str  # "mllog", "mll-v0.6", "mixed" or "none"
    result_lines: list[ResultLine] = field(default_factory=list)  # every RESULT line, in order
    # marker lines whose time is not a finite number (also counted as malformed)
    bad_time_lines: int = 0
    bad_time_line_nos: list[int] = field(default_factory=list)  # the first 20, 1-based

    def first(self, key: str) -> Event | None:
        """The first event with this key, or None."""
        for ev in self.events:
            if ev.key == key:
                return ev
        return None

    def last(self, key: str) -> Event | None:
        """The last event with this key, or None."""
        for ev in reversed(self.events):
            if ev.key == key:
                return ev
        return None

    def all(self, key: str) -> list[Event]:
        """All events with this key, in file order."""
        return [ev for ev in self.events if ev.key == key]


def parse_text(text: str) -> ParsedLog:
    """Parse the text of one MLPerf log (either format, or both mixed)."""
    state = _State()
    _feed_all(text, state, _MARKER_STR_RE, "\n", "RESULT,", ":::MLL", str, False)
    return state.result()


def parse_bytes(data: bytes) -> ParsedLog:
    """Parse the bytes of one MLPerf log: only what follows a marker is decoded (UTF-8,
    undecodable bytes replaced), which is what makes parsing a 140 KB log cheap."""
    state = _State()
    _feed_all(data, state, _MARKER_BYTES_RE, b"\n", b"RESULT,", b":::MLL", _decode, False)
    return state.result()


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "replace")


# The first ":::MLL" of a line: a v0.6 event's fields (seconds, key, JSON payload) at once, or
# else the rest of the line (":::MLLOG {...}", or a malformed line); a second marker on the same
# line is part of the rest.
_V06 = r"[ \t]+([0-9]+(?:\.[0-9]*)?)[ \t]+([^\s:]+):[ \t]*([^\n]*)"
_MARKER_STR_RE = re.compile(f":::MLL(?:{_V06}|([^\n]*))")
_MARKER_BYTES_RE = re.compile(f":::MLL(?:{_V06}|([^\n]*))".encode())


class _State:
    """What the segments of one log add up to (see _scan_segment)."""

    __slots__ = (
        "bad_nos",
        "bad_time_nos",
        "events",
        "line_no",
        "n_bad",
        "n_bad_time",
        "n_mllog",
        "n_v06",
        "results",
    )

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.bad_nos: list[int] = []
        self.bad_time_nos: list[int] = []
        self.results: list[ResultLine] = []
        self.n_bad = self.n_bad_time = self.n_mllog = self.n_v06 = 0
        self.line_no = 1  # of the first line of the next segment

    def malformed(self, line_no: int) -> None:
        self.n_bad += 1
        if len(self.bad_nos) < MAX_MALFORMED_LINE_NOS:
            self.bad_nos.append(line_no)

    def result(self) -> ParsedLog:
        n_mllog, n_v06 = self.n_mllog, self.n_v06
        if n_mllog and n_v06:
            fmt = "mixed"
        elif n_mllog:
            fmt = "mllog"
        elif n_v06:
            fmt = "mll-v0.6"
        else:
            fmt = "none"
        results = self.results
        return ParsedLog(
            self.events,
            results[-1] if results else None,
            self.n_bad,
            self.bad_nos,
            fmt,
            results,
            self.n_bad_time,
            self.bad_time_nos,
        )


def _json_depth(obj: Any) -> int:
    """How deep lists and dicts nest in ``obj`` (iterative: any depth)."""
    deepest = 0
    stack = [(obj, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        elif not isinstance(item, list):
            continue
        deepest = max(deepest, depth)
        stack.extend((sub, depth + 1) for sub in item)
    return deepest


def _too_deep(text: str, obj: Any) -> bool:
    """Whether ``obj`` (parsed from ``text``) nests deeper than MAX_JSON_DEPTH; counting
    brackets first keeps the walk for the rare payload that could be."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False
    return _json_depth(obj) > MAX_JSON_DEPTH


class _TimeError(ValueError):
    """An event's time is not a finite number of an ordinary size."""


def _scan_segment(
    text: Any,
    state: _State,
    marker_re: re.Pattern[Any],
    newline: Any,
    result_marker: Any,
    decode: Any,
    count_rest: bool = True,
) -> None:
    """Add the events of ``text`` (whole lines, str or bytes) to ``state``; ``count_rest``
    False: no line follows, so the lines after the last marker need no counting."""
    # long: the parser's hot loop (bench/parse_logs.py): both event formats inline, with the
    # locals bound here, which every part of a split would need passed in
    append = state.events.append
    scan = _scan_json
    count = text.count
    limit = _TIME_LIMIT
    deep_len = 2 * MAX_JSON_DEPTH  # "[" and "]" per level: a shorter payload is not too deep
    base = state.line_no
    results = state.results

    # A regex jumps from marker to marker instead of visiting every line: a GNMT log has about
    # 60 events among 1,300 lines of progress output (bench/parse_logs.py).
    for start, end in _iter_lines_with(text, result_marker, newline):
        line = decode(text[start:end])
        if ":::MLL" not in line:
            found = _result_line(line)
            if found is not None:
                results.append(found)
    line_no, counted_to = base, 0
    n_mllog = n_v06 = 0
    for marker in marker_re.finditer(text):
        pos = marker.start()
        line_no += count(newline, counted_to, pos)
        counted_to = pos
        seconds, key, payload, rest = marker.groups()
        try:
            if seconds is not None:  # v0.6 ":::MLL <seconds> <key>: <json>"
                payload = decode(payload).rstrip()
                rec, stop = scan(payload, 0)  # json.loads without its Python wrappers
                if stop != len(payload) or type(rec) is not dict:
                    raise ValueError("payload is not one JSON object")
                if len(payload) > deep_len and _too_deep(payload, rec):
                    raise ValueError("payload nested too deep")
                t_s = float(seconds)
                if not t_s < limit:  # digits only: never negative, but 1e400 digits are inf
                    raise _TimeError("time out of range")
                meta = rec.get("metadata")
                append(
                    Event(
                        decode(key),
                        rec.get("value"),
                        t_s,
                        meta if type(meta) is dict else {},
                        line_no,
                    )
                )
                n_v06 += 1
                continue
            rest = decode(rest)
            if rest[:2] != "OG":
                if rest[:1] in (" ", "\t"):
                    raise ValueError("not a :::MLL event")
                continue  # ":::MLL" followed by something else: not an event marker
            rec = _load_object(rest[2:])
            t_ms = rec["time_ms"]
            key = rec["key"]
            if type(t_ms) not in (int, float) or type(key) is not str:
                raise ValueError("bad time_ms or key")
            if not -limit < t_ms < limit:  # inf, nan (every comparison is False), 10**400
                raise _TimeError("time_ms out of range")
            if len(rest) > deep_len and _too_deep(rest, rec):
                raise ValueError("payload nested too deep")
            meta = rec.get("metadata")
            append(
                Event(
                    key,
                    rec.get("value"),
                    t_ms / 1000.0,
                    meta if type(meta) is dict else {},
                    line_no,
                )
            )
            n_mllog += 1
        except _TimeError:
            state.malformed(line_no)
            state.n_bad_time += 1
            if len(state.bad_time_nos) < MAX_MALFORMED_LINE_NOS:
                state.bad_time_nos.append(line_no)
        except (ValueError, KeyError, TypeError, StopIteration, RecursionError):
            # json.JSONDecodeError is a ValueError; StopIteration: the scanner found no JSON;
            # KeyError/TypeError: missing fields or a payload that is not an object;
            # RecursionError: nested deeper than the interpreter's recursion limit.
            state.malformed(line_no)
    state.n_mllog += n_mllog
    state.n_v06 += n_v06
    state.line_no = line_no + count(newline, counted_to) if count_rest else line_no


def _feed_all(
    text: Any,
    state: _State,
    marker_re: re.Pattern[Any],
    newline: Any,
    result_marker: Any,
    marker: Any,
    decode: Any,
    count_rest: bool = True,
) -> None:
    """Scan all of ``text``; lines longer than MAX_LINE_BYTES are cut out first (one
    malformed line each when they hold a marker). ``count_rest``: see _scan_segment."""
    if len(text) <= MAX_LINE_BYTES or not _has_long_line(text, newline):
        _scan_segment(text, state, marker_re, newline, result_marker, decode, count_rest)
        return
    n = len(text)
    start = 0
    while start < n:
        nl = text.find(newline, start)
        nl = n if nl < 0 else nl
        if nl - start > MAX_LINE_BYTES:
            if marker in text[start:nl]:
                state.malformed(state.line_no)
            state.line_no += 1
            start = nl + 1
            continue
        # the run of short lines up to the next long one, scanned at once
        stop = nl + 1
        while stop < n:
            nxt = text.find(newline, stop)
            nxt = n if nxt < 0 else nxt
            if nxt - stop > MAX_LINE_BYTES:
                break
            stop = nxt + 1
        _scan_segment(text[start:stop], state, marker_re, newline, result_marker, decode)
        start = stop


def _has_long_line(text: Any, newline: Any) -> bool:
    """Whether a line of ``text`` is longer than MAX_LINE_BYTES. Such a line covers one of
    the positions 0, L, 2L ... (L = MAX_LINE_BYTES), so the newlines around each of those
    decide: a few short searches, whatever the number of lines."""
    n, step = len(text), MAX_LINE_BYTES
    for probe in range(0, n, step):
        before = text.rfind(newline, 0, probe + 1)  # -1: the line starts at 0
        after = text.find(newline, probe)
        if (n if after < 0 else after) - before - 1 > step:
            return True
    return False


def _iter_lines_with(text: Any, marker: Any, newline: Any) -> Iterator[tuple[int, int]]:
    """(start, end) of every line of ``text`` (str or bytes) that contains ``marker``."""
    pos = text.find(marker)
    while pos >= 0:
        start = text.rfind(newline, 0, pos) + 1
        end = text.find(newline, pos)
        if end < 0:
            end = len(text)
        yield start, end
        pos = text.find(marker, end)


def _blocks(fh: Any, first: bytes) -> Iterator[bytes]:
    """``first``, then the rest of ``fh`` in blocks of CHUNK_BYTES."""
    block = first
    while block:
        yield block
        block = fh.read(CHUNK_BYTES)


def parse_file(path: str | os.PathLike[str]) -> ParsedLog:
    """Parse one MLPerf log file, streamed in blocks of CHUNK_BYTES (undecodable bytes are
    replaced): memory stays bounded by a few blocks whatever the file's size. A line longer
    than MAX_LINE_BYTES is skipped; it is one malformed line when it holds a marker."""
    state = _State()
    args = (_MARKER_BYTES_RE, b"\n", b"RESULT,", b":::MLL", _decode)
    carry = b""
    skipping = False  # inside a line longer than MAX_LINE_BYTES: drop bytes to its newline
    skipped_marker = False  # that line holds a marker
    with open(path, "rb") as fh:
        # a small file in one read of its size (a read of CHUNK_BYTES would allocate them all)
        size = os.fstat(fh.fileno()).st_size
        first = fh.read(min(CHUNK_BYTES, size + 1) if size else CHUNK_BYTES)
        more = fh.read(1) if len(first) < CHUNK_BYTES else b"?"
        if not more:  # the whole file in one block: scanned as it is, no slicing
            _feed_all(first, state, *args, False)
            return state.result()
        first += b"" if more == b"?" else more
        for block in _blocks(fh, first):
            buf = carry + block if carry else block
            if skipping:
                nl = buf.find(b"\n")
                skipped_marker = skipped_marker or b":::MLL" in (buf if nl < 0 else buf[:nl])
                if nl < 0:
                    carry = buf[-5:]  # a marker may straddle the next block
                    continue
                if skipped_marker:
                    state.malformed(state.line_no)
                state.line_no += 1
                skipping = skipped_marker = False
                buf = buf[nl + 1 :]
            last = buf.rfind(b"\n")
            if last >= 0:
                _feed_all(buf[: last + 1], state, *args)
                carry = buf[last + 1 :]
            else:
                carry = buf
            if len(carry) > MAX_LINE_BYTES:
                skipping, skipped_marker = True, b":::MLL" in carry
                carry = carry[-5:]
    if skipping:
        if skipped_marker:
            state.malformed(state.line_no)
    elif carry:
        _feed_all(carry, state, *args, False)
    return state.result()


# ---------------------------------------------------------------------------
# Outcome of one run


@dataclass(slots=True)
class RunOutcome:
    """What one training run achieved, derived from its MLPerf log."""

    run_start_s: float | None  # FIRST run_start event time
    run_stop_s: float | None  # LAST run_stop event time (eval_result: run_start + timestamp)
    time_to_train_s: float | None  # run_stop - run_start, rounded to 3 decimals
    status: str | None  # run_stop metadata["status"], never submission_status
    converged: bool  # status == "success" and the final quality meets the target(s)
    final_quality: float | None  # value of the LAST eval_accuracy event (its value_key part)
    quality_target: float
    quality_direction: str  # "higher" (value >= target) or "lower" (value <= target)
    epochs: int | None  # highest epoch_num in epoch_stop (else eval_accuracy) metadata
    epochs_to_converge: int | None  # epoch_num of the first eval meeting the target
    time_per_epoch_s: float | None  # mean epoch_stop - epoch_start, matched by epoch_num
    seed: int | None  # value of the "seed" event, else the seed field of the RESULT line
    benchmark: str | None  # value of submission_benchmark
    result_line_wall_s: float | None  # v0.6 RESULT line wall time (the slowest process's)
    # (epoch_num, value, seconds since run_start); the last item is None without run_start
    eval_history: list[tuple[int | None, float, float | None]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # every problem, log problems first
    # the final value of each component named in also_targets (e.g. Mask R-CNN's SEGM)
    final_components: dict[str, float | None] = field(default_factory=dict)
    # why the log is not a valid MLPerf log of a finished run (log_problems()); when any, the
    # run has no result: not converged and no time to train
    log_problems: list[str] = field(default_factory=list)

    @property
    def valid_log(self) -> bool:
        """The log is a valid MLPerf log of a finished run (no log problems)."""
        return not self.log_problems

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (eval_history as a list of lists)."""
        return {
            "run_start_s": self.run_start_s,
            "run_stop_s": self.run_stop_s,
            "time_to_train_s": self.time_to_train_s,
            "status": self.status,
            "converged": self.converged,
            "final_quality": self.final_quality,
            "quality_target": self.quality_target,
            "quality_direction": self.quality_direction,
            "epochs": self.epochs,
            "epochs_to_converge": self.epochs_to_converge,
            "time_per_epoch_s": self.time_per_epoch_s,
            "seed": self.seed,
            "benchmark": self.benchmark,
            "result_line_wall_s": self.result_line_wall_s,
            "eval_history": [list(item) for item in self.eval_history],
            "problems": list(self.problems),
            "final_components": dict(self.final_components),
            "log_problems": list(self.log_problems),
            "valid_log": self.valid_log,
        }


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


def _as_int(x: Any) -> int | None:
    """An integral number (or numeric string) as int; anything else as None."""
    if isinstance(x, bool):
        return None
    if isinstance(x, int):
        return x
    if isinstance(x, float):
        return int(x) if x.is_integer() else None
    if isinstance(x, str):
        try:
            return int(x.strip())
        except ValueError:
            return None
    return None


def _as_float(x: Any) -> float | None:
    """A finite real number, or a string holding one (v0.6 Transformer logs BLEU as
    ``"25.33"``), as float; anything else (bool, dict, "nan", junk) as None."""
    if isinstance(x, str):
        try:
            x = float(x.strip())
        except ValueError:
            return None
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    try:
        f = float(x)
    except OverflowError:  # an integer beyond a float's range (e.g. 10**400)
        return None
    return f if math.isfinite(f) else None


def _component(value: Any, key: str | None) -> float | None:
    """The quality in an eval_accuracy value: the value itself (``key`` None), or the entry
    ``key`` of a mapping, searched at any depth (v0.6 Mask R-CNN logs
    ``{"accuracy": {"BBOX": 0.377, "SEGM": 0.343}}``)."""
    if key is None:
        return _as_float(value)
    if isinstance(value, dict):
        if key in value:
            return _as_float(value[key])
        for sub in value.values():
            found = _component(sub, key)
            if found is not None:
                return found
    return None


def _short(value: Any, width: int = 80) -> str:
    """repr(value), cut to ``width`` characters (a log may hold anything)."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _meets(value: float, target: float, higher: bool) -> bool:
    return value >= target if higher else value <= target


def run_outcome(
    parsed: ParsedLog,
    target: float,
    direction: str = "higher",
    *,
    value_key: str | None = None,
    also_targets: Mapping[str, float] | None = None,
    time_source: str = "run_stop",
    also_directions: Mapping[str, str] | None = None,
) -> RunOutcome:
    """Summarise one parsed log against a quality target.

    ``direction`` is "higher" (quality meets the target when value >= target, e.g. BLEU,
    accuracy) or "lower" (value <= target, e.g. perplexity); anything else raises
    ValueError.  ``value_key`` names the part of a mapping-valued eval_accuracy that is the
    quality; every entry of ``also_targets`` (component -> target, in ``direction`` unless
    ``also_directions`` names another) must be met too.  The run converged when the run ended
    with status "success" and the last evaluation (:func:`eval_events`) meets the target(s).

    ``time_source`` "run_stop" (every benchmark but v0.6 MiniGo): time to train is
    ``run_stop - run_start`` and the status is run_stop's.  "eval_result" (v0.6 MiniGo, as
    the v0.6 compliance checker scores it): time to train is the ``timestamp`` metadata of the
    ``eval_result`` event (seconds from run_start to the saving of the first model that beat
    the target); status "success" when that timestamp is > 0.
    """
    _check_choices(direction, time_source)
    target = float(target)
    higher = direction == "higher"
    also = _also(also_targets, also_directions, direction)
    invalid = log_problems(parsed, time_source)
    timing = _timing(parsed, time_source, valid_log=not invalid)
    evals = _evaluations(parsed, target, higher, value_key, also, timing.run_start_s)
    quality_problems, quality_met = _quality_problems(evals, target, higher, value_key, also)
    converged = not invalid and _finished(timing) and quality_met
    epochs, time_per_epoch_s = _epochs(parsed, evals.history)
    seed, benchmark, result_line_wall_s = _identity(parsed)
    malformed = [m] if (m := _malformed_problem(parsed)) else []
    return RunOutcome(
        run_start_s=timing.run_start_s,
        run_stop_s=timing.run_stop_s,
        time_to_train_s=timing.time_to_train_s,
        status=timing.status,
        converged=converged,
        final_quality=evals.final_quality,
        quality_target=target,
        quality_direction=direction,
        epochs=epochs,
        epochs_to_converge=evals.epochs_to_converge if converged else None,
        time_per_epoch_s=time_per_epoch_s,
        seed=seed,
        benchmark=benchmark,
        result_line_wall_s=result_line_wall_s,
        eval_history=evals.history,
        problems=[*invalid, *timing.problems, *quality_problems, *malformed],
        final_components=evals.final_components,
        log_problems=invalid,
    )


def _also(
    also_targets: Mapping[str, float] | None,
    also_directions: Mapping[str, str] | None,
    direction: str,
) -> dict[str, tuple[float, bool]]:
    """Each also_targets component's (target, higher is better)."""
    directions = dict(also_directions or {})
    for d in directions.values():
        _check_choices(d, "run_stop")
    return {
        k: (float(v), directions.get(k, direction) == "higher")
        for k, v in (also_targets or {}).items()
    }


def _check_choices(direction: str, time_source: str) -> None:
    if direction not in ("higher", "lower"):
        raise ValueError(f"direction must be 'higher' or 'lower', got {direction!r}")
    if time_source not in TIME_SOURCES:
        raise ValueError(f"time_source must be one of {TIME_SOURCES}, got {time_source!r}")


def _finished(timing: _Timing) -> bool:
    """The run has a positive time to train and ended with status success."""
    return (
        timing.time_to_train_s is not None
        and timing.time_to_train_s > 0
        and timing.status is not None
        and timing.status.lower() == "success"
    )


@dataclass
class _Timing:
    """When the run started and stopped, its time to train and status, and what is wrong
    with them."""

    run_start_s: float | None = None
    run_stop_s: float | None = None
    time_to_train_s: float | None = None
    status: str | None = None
    problems: list[str] = field(default_factory=list)


def _timing(parsed: ParsedLog, time_source: str, *, valid_log: bool) -> _Timing:
    """The run's times and status by ``time_source`` (see :func:`run_outcome`); a log that is
    not valid has no time to train."""
    start_ev = parsed.first("run_start")
    t = _Timing(run_start_s=start_ev.time_s if start_ev is not None else None)
    if time_source == "run_stop":
        stop_ev = parsed.last("run_stop")
        t.run_stop_s = stop_ev.time_s if stop_ev is not None else None
        if t.run_start_s is not None and t.run_stop_s is not None and valid_log:
            t.time_to_train_s = round(t.run_stop_s - t.run_start_s, 3)
        if stop_ev is not None:
            raw_status = stop_ev.metadata.get("status")
            if raw_status is None:
                t.problems.append("run_stop has no status")
            else:
                t.status = str(raw_status)
                if t.status.lower() != "success":
                    t.problems.append(f"run_stop status is {_short(t.status)}")
        return t
    result_ev = parsed.last("eval_result")
    stamp = _as_float(result_ev.metadata.get("timestamp")) if result_ev is not None else None
    if result_ev is None:
        t.problems.append("no eval_result event (no model beat the target)")
    elif stamp is None or stamp <= 0:
        t.problems.append(f"eval_result timestamp {_short(result_ev.metadata.get('timestamp'))}")
    else:
        t.status = "success"
        if valid_log:
            t.time_to_train_s = round(stamp, 3)
        if t.run_start_s is not None:
            t.run_stop_s = t.run_start_s + stamp
    return t


@dataclass
class _Evaluations:
    """The eval_accuracy events of a log, in file order."""

    history: list[tuple[int | None, float, float | None]]  # (epoch, quality, s since start)
    final_quality: float | None  # of the last eval_accuracy (None: not a number)
    final_components: dict[str, float | None]  # the also_targets' parts of the last one
    epochs_to_converge: int | None  # epoch of the first evaluation that met every target
    n_eval: int
    last_eval: Event | None  # the last eval_accuracy event


def _evaluations(
    parsed: ParsedLog,
    target: float,
    higher: bool,
    value_key: str | None,
    also: Mapping[str, tuple[float, bool]],
    run_start_s: float | None,
) -> _Evaluations:
    history: list[tuple[int | None, float, float | None]] = []
    final_quality: float | None = None
    final_components: dict[str, float | None] = {k: None for k in also}
    epochs_to_converge: int | None = None
    n_eval = 0
    for ev in eval_events(parsed):
        n_eval += 1
        val = _component(ev.value, value_key)
        parts = {k: _component(ev.value, k) for k in also}
        final_components = parts
        if val is None:
            final_quality = None  # the last eval_accuracy is what counts
            continue
        final_quality = val
        ep = _as_int(ev.metadata.get("epoch_num"))
        since = round(ev.time_s - run_start_s, 3) if run_start_s is not None else None
        history.append((ep, val, since))
        parts_met = all(p is not None and _meets(p, *also[k]) for k, p in parts.items())
        if epochs_to_converge is None and _meets(val, target, higher) and parts_met:
            epochs_to_converge = ep
    return _Evaluations(
        history=history,
        final_quality=final_quality,
        final_components=final_components,
        epochs_to_converge=epochs_to_converge,
        n_eval=n_eval,
        last_eval=(eval_events(parsed) or [None])[-1],
    )


def eval_events(parsed: ParsedLog) -> list[Event]:
    """The log's eval_accuracy events in file order; those whose metadata names a ``metric``
    are merged per ``samples_count`` into one event (at the first one's place) whose value
    maps each metric to its value and whose time is the latest of them, as the v5.0
    compliance checker builds ``aggregated_eval_accuracy`` for Stable Diffusion."""
    out: list[Event] = []
    merged: dict[Any, Event] = {}
    for ev in parsed.events:
        if ev.key != "eval_accuracy":
            continue
        metric = ev.metadata.get("metric")
        if not isinstance(metric, str):
            out.append(ev)
            continue
        count = ev.metadata.get("samples_count")
        key = count if isinstance(count, int | float | str) else None
        agg = merged.get(key)
        if agg is None:
            agg = Event(ev.key, {}, ev.time_s, {**ev.metadata}, ev.line_no)
            agg.metadata.pop("metric", None)
            merged[key] = agg
            out.append(agg)
        agg.value[metric] = ev.value
        agg.time_s = max(agg.time_s, ev.time_s)
    return out


def _quality_problems(
    evals: _Evaluations,
    target: float,
    higher: bool,
    value_key: str | None,
    also: Mapping[str, tuple[float, bool]],
) -> tuple[list[str], bool]:
    """What is wrong with the final quality, and whether it meets the target and every
    also_targets part meets its own."""
    problems: list[str] = []
    what = "final eval_accuracy" + (f" {value_key}" if value_key else "")
    final = evals.final_quality
    if evals.n_eval == 0:
        problems.append("no eval_accuracy event")
    elif final is None and evals.last_eval is not None:
        problems.append(f"{what} {_short(evals.last_eval.value)} is not a number")
    elif final is not None and not _meets(final, target, higher):
        problems.append(
            f"{what} {final!r} does not meet target {target!r}"
            + ("" if higher else " (lower is better)")
        )
    components_met = True
    if evals.n_eval:
        for k, (t, part_higher) in also.items():
            got = evals.final_components.get(k)
            if got is None or not _meets(got, t, part_higher):
                components_met = False
                problems.append(f"final eval_accuracy {k} {got!r} does not meet target {t!r}")
    met = final is not None and _meets(final, target, higher) and components_met
    return problems, met


def _epochs(
    parsed: ParsedLog, history: Sequence[tuple[int | None, float, float | None]]
) -> tuple[int | None, float | None]:
    """The number of epochs (the last epoch_stop's epoch_num, else the last evaluated epoch)
    and the mean time per epoch (epoch_start and epoch_stop matched by epoch_num)."""
    starts: dict[int, float] = {}
    stops: dict[int, float] = {}
    for ev in parsed.events:
        k = ev.key
        if k == "epoch_start":
            ep = _as_int(ev.metadata.get("epoch_num"))
            if ep is not None and ep not in starts:
                starts[ep] = ev.time_s  # first start of the epoch
        elif k == "epoch_stop":
            ep = _as_int(ev.metadata.get("epoch_num"))
            if ep is not None:
                stops[ep] = ev.time_s  # last stop of the epoch
    epochs: int | None
    if stops:
        epochs = max(stops)
    else:
        eval_epochs = [ep for ep, _, _ in history if ep is not None]
        epochs = max(eval_epochs) if eval_epochs else None
    durations = [stops[ep] - starts[ep] for ep in stops if ep in starts]
    time_per_epoch_s = math.fsum(durations) / len(durations) if durations else None
    return epochs, time_per_epoch_s


def _identity(parsed: ParsedLog) -> tuple[int | None, str | None, float | None]:
    """The run's seed (the seed event, else the RESULT line's), its benchmark
    (submission_benchmark) and the latest RESULT line's wall time."""
    seed_ev = parsed.first("seed")
    seed = _as_int(seed_ev.value) if seed_ev is not None else None
    if seed is None and parsed.result_line is not None:
        seed = _as_int(parsed.result_line.seed)
    bench_ev = parsed.first("submission_benchmark")
    benchmark = str(bench_ev.value) if bench_ev is not None and bench_ev.value is not None else None
    result_line_wall_s = (
        max(r.wall_time_s for r in parsed.result_lines) if parsed.result_lines else None
    )
    return seed, benchmark, result_line_wall_s


def _malformed_problem(parsed: ParsedLog) -> str | None:
    if not parsed.malformed_lines:
        return None
    n = parsed.malformed_lines
    first_at = parsed.malformed_line_nos[0] if parsed.malformed_line_nos else "?"
    return f"{n} malformed MLPerf line{'s' if n != 1 else ''} (first at line {first_at})"
