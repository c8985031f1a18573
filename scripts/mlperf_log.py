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

``run_outcome`` turns a parsed log into the quantities the benchmark reports:
time to train (``run_stop - run_start``, the MLPerf score of one run; for v0.6 MiniGo, the
``timestamp`` of the ``eval_result`` event), status, convergence against a quality target,
epochs, and a list of human-readable problems.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Event",
    "ParsedLog",
    "ResultLine",
    "RunOutcome",
    "parse_file",
    "parse_text",
    "run_outcome",
]

MAX_MALFORMED_LINE_NOS = 20

# ``:::MLL <seconds> <key>: <json>``; the marker itself is located with str.find first.
_MLL_V06_RE = re.compile(r":::MLL[ \t]+([0-9]+(?:\.[0-9]*)?)[ \t]+([^\s:]+):[ \t]*(.*)")
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
    return _parse(text, lambda line: line)  # type: ignore[arg-type,return-value]


def parse_bytes(data: bytes) -> ParsedLog:
    """Parse the bytes of one MLPerf log: only the lines with a marker are decoded (UTF-8,
    undecodable bytes replaced), which is what makes parsing a 140 KB log cheap."""
    return _parse(data, lambda line: line.decode("utf-8", "replace"))  # type: ignore[arg-type]


def _parse(text: str | bytes, decode: Callable[[Any], str]) -> ParsedLog:
    events: list[Event] = []
    append = events.append
    bad_nos: list[int] = []
    n_bad = 0
    n_mllog = 0
    n_v06 = 0
    results: list[ResultLine] = []
    loads = _load_object
    v06_match = _MLL_V06_RE.match

    # Jump from marker to marker instead of visiting every line: a GNMT log has about 60
    # events among 1,300 lines of progress output (bench/parse_logs.py).
    binary = isinstance(text, bytes)
    mll, newline = (b":::MLL", b"\n") if binary else (":::MLL", "\n")
    line_no, counted_to = 1, 0
    for start, end in _iter_lines_with(text, b"RESULT," if binary else "RESULT,"):
        line = decode(text[start:end])
        if ":::MLL" not in line:
            found = _result_line(line)
            if found is not None:
                results.append(found)
    for start, end in _iter_lines_with(text, mll):
        line_no += text.count(newline, counted_to, start)  # type: ignore[arg-type]
        counted_to = start
        line = decode(text[start:end])
        pos = line.find(":::MLL")
        tag = line[pos + 6 : pos + 8]
        if tag == "OG":
            is_mllog = True
        elif tag[:1] in (" ", "\t"):
            is_mllog = False
        else:  # ":::MLL" followed by something else: not an event marker
            continue
        try:
            if is_mllog:
                rec = loads(line[pos + 8 :])
                t_ms = rec["time_ms"]
                key = rec["key"]
                if type(t_ms) not in (int, float) or type(key) is not str:
                    raise ValueError("bad time_ms or key")
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
            else:
                m = v06_match(line, pos)
                if m is None:
                    raise ValueError("not a :::MLL event")
                rec = loads(m.group(3))
                if type(rec) is not dict:
                    raise ValueError("payload is not an object")
                meta = rec.get("metadata")
                append(
                    Event(
                        m.group(2),
                        rec.get("value"),
                        float(m.group(1)),
                        meta if type(meta) is dict else {},
                        line_no,
                    )
                )
                n_v06 += 1
        except (ValueError, KeyError, TypeError):
            # json.JSONDecodeError is a ValueError; KeyError/TypeError: missing fields or
            # a JSON payload that is not an object.
            n_bad += 1
            if len(bad_nos) < MAX_MALFORMED_LINE_NOS:
                bad_nos.append(line_no)

    if n_mllog and n_v06:
        fmt = "mixed"
    elif n_mllog:
        fmt = "mllog"
    elif n_v06:
        fmt = "mll-v0.6"
    else:
        fmt = "none"
    return ParsedLog(events, results[-1] if results else None, n_bad, bad_nos, fmt, results)


def _iter_lines_with(text: Any, marker: Any) -> Iterator[tuple[int, int]]:
    """(start, end) of every line of ``text`` (str or bytes) that contains ``marker``."""
    newline = b"\n" if isinstance(text, bytes) else "\n"
    pos = text.find(marker)
    while pos >= 0:
        start = text.rfind(newline, 0, pos) + 1
        end = text.find(newline, pos)
        if end < 0:
            end = len(text)
        yield start, end
        pos = text.find(marker, end)


def parse_file(path: str | os.PathLike[str]) -> ParsedLog:
    """Parse one MLPerf log file (read in one go; undecodable bytes are replaced)."""
    return parse_bytes(Path(path).read_bytes())


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
    problems: list[str] = field(default_factory=list)
    # the final value of each component named in also_targets (e.g. Mask R-CNN's SEGM)
    final_components: dict[str, float | None] = field(default_factory=dict)

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
        }


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
    f = float(x)
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
) -> RunOutcome:
    """Summarise one parsed log against a quality target.

    ``direction`` is "higher" (quality meets the target when value >= target, e.g. BLEU,
    accuracy) or "lower" (value <= target, e.g. perplexity); anything else raises
    ValueError.  ``value_key`` names the part of a mapping-valued eval_accuracy that is the
    quality; every entry of ``also_targets`` (component -> target, same direction) must be met
    too.  The run converged when the run ended with status "success" and the last
    eval_accuracy meets the target(s).

    ``time_source`` "run_stop" (every benchmark but v0.6 MiniGo): time to train is
    ``run_stop - run_start`` and the status is run_stop's.  "eval_result" (v0.6 MiniGo, as
    the v0.6 compliance checker scores it): time to train is the ``timestamp`` metadata of the
    ``eval_result`` event (seconds from run_start to the saving of the first model that beat
    the target); status "success" when that timestamp is > 0.
    """
    if direction not in ("higher", "lower"):
        raise ValueError(f"direction must be 'higher' or 'lower', got {direction!r}")
    if time_source not in TIME_SOURCES:
        raise ValueError(f"time_source must be one of {TIME_SOURCES}, got {time_source!r}")
    target = float(target)
    higher = direction == "higher"
    also = {k: float(v) for k, v in (also_targets or {}).items()}
    problems: list[str] = []

    start_ev = parsed.first("run_start")
    run_start_s = start_ev.time_s if start_ev is not None else None
    if start_ev is None:
        problems.append("no run_start event")
    run_stop_s: float | None = None
    time_to_train_s: float | None = None
    status: str | None = None
    if time_source == "run_stop":
        stop_ev = parsed.last("run_stop")
        run_stop_s = stop_ev.time_s if stop_ev is not None else None
        if stop_ev is None:
            problems.append("no run_stop event")
        if run_start_s is not None and run_stop_s is not None:
            time_to_train_s = round(run_stop_s - run_start_s, 3)
            if time_to_train_s < 0:
                problems.append("run_stop precedes run_start")
        if stop_ev is not None:
            raw_status = stop_ev.metadata.get("status")
            if raw_status is None:
                problems.append("run_stop has no status")
            else:
                status = str(raw_status)
                if status.lower() != "success":
                    problems.append(f"run_stop status is {status!r}")
    else:
        result_ev = parsed.last("eval_result")
        stamp = _as_float(result_ev.metadata.get("timestamp")) if result_ev is not None else None
        if result_ev is None:
            problems.append("no eval_result event (no model beat the target)")
        elif stamp is None or stamp <= 0:
            problems.append(f"eval_result timestamp {result_ev.metadata.get('timestamp')!r}")
        else:
            status = "success"
            time_to_train_s = round(stamp, 3)
            if run_start_s is not None:
                run_stop_s = run_start_s + stamp

    # Evaluations, in file order.
    eval_history: list[tuple[int | None, float, float | None]] = []
    final_quality: float | None = None
    final_components: dict[str, float | None] = {k: None for k in also}
    epochs_to_converge: int | None = None
    n_eval = 0
    for ev in parsed.events:
        if ev.key != "eval_accuracy":
            continue
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
        eval_history.append((ep, val, since))
        parts_met = all(p is not None and _meets(p, also[k], higher) for k, p in parts.items())
        if epochs_to_converge is None and _meets(val, target, higher) and parts_met:
            epochs_to_converge = ep
    last_eval = parsed.last("eval_accuracy")
    what = "final eval_accuracy" + (f" {value_key}" if value_key else "")
    if n_eval == 0:
        problems.append("no eval_accuracy event")
    elif final_quality is None and last_eval is not None:
        problems.append(f"{what} {last_eval.value!r} is not a number")
    elif final_quality is not None and not _meets(final_quality, target, higher):
        problems.append(
            f"{what} {final_quality!r} does not meet target {target!r}"
            + ("" if higher else " (lower is better)")
        )
    components_met = True
    if n_eval:
        for k, t in also.items():
            got = final_components.get(k)
            if got is None or not _meets(got, t, higher):
                components_met = False
                problems.append(f"final eval_accuracy {k} {got!r} does not meet target {t!r}")

    converged = (
        status is not None
        and status.lower() == "success"
        and final_quality is not None
        and _meets(final_quality, target, higher)
        and components_met
    )
    if not converged:
        epochs_to_converge = None

    # Epochs and time per epoch, matched by metadata epoch_num.
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
        eval_epochs = [ep for ep, _, _ in eval_history if ep is not None]
        epochs = max(eval_epochs) if eval_epochs else None
    durations = [stops[ep] - starts[ep] for ep in stops if ep in starts]
    time_per_epoch_s = math.fsum(durations) / len(durations) if durations else None

    seed_ev = parsed.first("seed")
    seed = _as_int(seed_ev.value) if seed_ev is not None else None
    if seed is None and parsed.result_line is not None:
        seed = _as_int(parsed.result_line.seed)
    bench_ev = parsed.first("submission_benchmark")
    benchmark = str(bench_ev.value) if bench_ev is not None and bench_ev.value is not None else None
    result_line_wall_s = (
        max(r.wall_time_s for r in parsed.result_lines) if parsed.result_lines else None
    )

    if parsed.malformed_lines:
        n = parsed.malformed_lines
        first_at = parsed.malformed_line_nos[0] if parsed.malformed_line_nos else "?"
        problems.append(
            f"{n} malformed MLPerf line{'s' if n != 1 else ''} (first at line {first_at})"
        )

    return RunOutcome(
        run_start_s=run_start_s,
        run_stop_s=run_stop_s,
        time_to_train_s=time_to_train_s,
        status=status,
        converged=converged,
        final_quality=final_quality,
        quality_target=target,
        quality_direction=direction,
        epochs=epochs,
        epochs_to_converge=epochs_to_converge,
        time_per_epoch_s=time_per_epoch_s,
        seed=seed,
        benchmark=benchmark,
        result_line_wall_s=result_line_wall_s,
        eval_history=eval_history,
        problems=problems,
        final_components=final_components,
    )
