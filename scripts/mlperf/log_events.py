"""The events of one MLPerf log, as :mod:`scripts.mlperf.log_parser` reads them.

:class:`Event` is one ``:::MLLOG`` or ``:::MLL`` line (key, value, time, metadata, line
number); :class:`ResultLine` is the v0.6 run-script summary line ``RESULT,...``;
:class:`ParsedLog` is a whole log: its events in file order, its RESULT lines, and how many
lines held a marker but could not be read (malformed), with the first line numbers of each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Event", "ParsedLog", "ResultLine"]

# a ParsedLog keeps the line numbers of this many malformed lines (and of bad-time lines)
MAX_MALFORMED_LINE_NOS = 20


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
