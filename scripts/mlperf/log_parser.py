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
:func:`scripts.mlperf.log_validity.log_problems` reports.

What a parse gives (:class:`~scripts.mlperf.log_events.ParsedLog`) is in
:mod:`scripts.mlperf.log_events`; whether it is a valid log of a finished run in
:mod:`scripts.mlperf.log_validity`; what the run achieved in :mod:`scripts.mlperf.outcome`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

from scripts.mlperf.log_events import MAX_MALFORMED_LINE_NOS, Event, ParsedLog, ResultLine

__all__ = ["parse_bytes", "parse_file", "parse_text"]

# parse_file reads this much at a time; a marker line longer than MAX_LINE_BYTES is malformed
CHUNK_BYTES = 4 << 20
MAX_LINE_BYTES = 1 << 20
# deeper JSON payloads are malformed (a real MLPerf payload is nested 3 or 4 deep)
MAX_JSON_DEPTH = 64
# |time| at or above this (seconds or ms) is not a time: catches inf, nan and 1e400 at once
_TIME_LIMIT = 1e300

# ``RESULT,<benchmark>,<seed>,<wall seconds>,<org>,<start>``
_RESULT_RE = re.compile(r"RESULT,([^,]*),([^,]*),[ \t]*([0-9]+(?:\.[0-9]*)?)[ \t]*,([^,]*),(.*)")
# ``RESULT,<benchmark>,<wall seconds>,<org>,<start>`` (v0.6 MiniGo: no seed field)
_RESULT_NO_SEED_RE = re.compile(r"RESULT,([^,]*),[ \t]*([0-9]+(?:\.[0-9]*)?)[ \t]*,([^,]*),(.*)")

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
