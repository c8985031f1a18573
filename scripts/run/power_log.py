"""A run's power samples as MLPerf's power log and as run.json's account of them: pure functions
of the samples (:class:`Attempt`), so the window, the gaps and the sampling rate are tested
without a source (the sampling itself: :mod:`scripts.run.power_sampler`).

**The window.** The sampler runs from before the trainer starts until it has exited, but the
energy is the power of the timed region: mlperf-logging's result summarizer
(``_compute_power_node``) averages the readings between ``power_measurement_start`` and
``power_measurement_stop`` (after sorting the lines by time, a reading before the start or
after the stop is not counted) and multiplies that mean by the time to train. So the log's
``power_measurement_start`` is the trainer's ``run_start`` and its ``power_measurement_stop``
the first reading at or after ``run_stop`` (:func:`scored_window`): the integral then covers
the window exactly (each reading weighs the time since the one before, the first one the time
since the start), and the trainer's start-up and teardown are kept in the file but not scored.
Without both times in the log (a crash, a timeout), the window is the whole sampling.

**Gaps.** A failed sample leaves the interval that ends with it without a reading; a gap is a
stretch of them, from the sample before it (or the window's start) to the last failed one
(:func:`gap_record`), so one failed sample at 1 Hz is one second missing.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_GAPS = 20  # gaps named in run.json (and how many more there were)


@dataclass
class Attempt:
    """One sample: when it ended, the watts (None: failed) and why it failed."""

    time_ms: int
    watts: float | None
    error: str = ""


def scored_window(
    attempts: Sequence[Attempt], start_ms: int, end_ms: int, run: tuple[float, float] | None
) -> tuple[float, float]:
    """The power log's window: the log's ``run`` (run_start, run_stop in ms) to the first
    reading at or after run_stop (the last sample when none answered after it); the whole
    sampling (``start_ms`` to ``end_ms``) without the run's times or when they are not inside
    it (then :func:`scripts.mlperf.own_power.window_problem` names it)."""
    if run is None or not start_ms <= run[0] <= run[1] <= end_ms:
        return start_ms, end_ms
    after = [a.time_ms for a in attempts if a.watts is not None and a.time_ms >= run[1]]
    return run[0], (after[0] if after else end_ms)


def inside(attempts: Sequence[Attempt], start_ms: float, stop_ms: float) -> list[Attempt]:
    """The samples the window scores."""
    return [a for a in attempts if start_ms <= a.time_ms <= stop_ms]


def gap_record(attempts: Sequence[Attempt], start_ms: float, stop_ms: float) -> dict[str, Any]:
    """run.json's account of the samples of a window: how many, how many failed, and each gap
    (a stretch of failed samples: from the sample before it, or the start, to its last failed
    sample; its first error), the first :data:`MAX_GAPS` of them, and the seconds the gaps
    cover (``gap_s``)."""
    gaps: list[dict[str, Any]] = []
    previous, open_gap = start_ms, None
    for a in attempts:
        if a.watts is None:
            if open_gap is None:
                open_gap = {"from_ms": previous, "samples": 0, "error": a.error}
            open_gap["samples"] += 1
            open_gap["to_ms"] = a.time_ms
        elif open_gap is not None:
            gaps.append(open_gap)
            open_gap = None
        previous = a.time_ms
    if open_gap is not None:  # the source never answered again
        gaps.append({**open_gap, "until_stop": True})
    gap_ms = sum(g["to_ms"] - g["from_ms"] for g in gaps)
    shown = [
        {
            "from_s": round((g["from_ms"] - start_ms) / 1000, 3),
            "to_s": round((g["to_ms"] - start_ms) / 1000, 3),
            "samples": g["samples"],
            "until_stop": bool(g.get("until_stop")),
            "error": g["error"],
        }
        for g in gaps[:MAX_GAPS]
    ]
    return {
        "window_s": round((stop_ms - start_ms) / 1000, 3),
        "samples": len(attempts),
        "readings": sum(1 for a in attempts if a.watts is not None),
        "failed": sum(1 for a in attempts if a.watts is None),
        "gap_s": round(gap_ms / 1000, 3),
        "gaps": shown,
        "gaps_not_shown": max(0, len(gaps) - MAX_GAPS),
    }


def spacing_record(attempts: Sequence[Attempt], start_ms: float) -> dict[str, float | None]:
    """The sampling rate achieved in a window: the median and the longest time between
    consecutive samples (the first from the window's start), failed ones included; a source
    slower than ``interval_s`` makes the sampler skip its grid points."""
    times = [start_ms, *(a.time_ms for a in attempts)]
    steps = [(b - a) / 1000 for a, b in zip(times, times[1:], strict=False)]
    if not steps:
        return {"median_spacing_s": None, "max_spacing_s": None}
    return {
        "median_spacing_s": round(statistics.median(steps), 3),
        "max_spacing_s": round(max(steps), 3),
    }


def _event(time_ms: float, event_type: str, key: str, value: Any, meta: dict[str, Any]) -> str:
    """One ``:::MLLOG`` line, its keys in mllog's order."""
    payload = {
        "namespace": "",
        "time_ms": time_ms,
        "event_type": event_type,
        "key": key,
        "value": value,
        "metadata": meta,
    }
    return ":::MLLOG " + json.dumps(payload) + "\n"


def power_log_text(
    start_ms: float,
    stop_ms: float,
    attempts: Sequence[Attempt],
    conversion_eff: float,
    source: str,
) -> str:
    """The text of ``power/node_0.txt``, in time order: the readings before the window (not
    scored), its start and the conversion efficiency, the readings in it, its stop, the
    readings after it (not scored). Failed samples have no line."""
    meta = {"host": "node_0", "source": source}
    readings = sorted((a for a in attempts if a.watts is not None), key=lambda a: a.time_ms)

    def lines(keep: Any) -> list[str]:
        return [
            _event(a.time_ms, "POINT_IN_TIME", "power_reading", a.watts, meta)
            for a in readings
            if keep(a.time_ms)
        ]

    return "".join(
        [
            *lines(lambda t: t < start_ms),
            _event(start_ms, "INTERVAL_START", "power_measurement_start", None, meta),
            _event(start_ms, "POINT_IN_TIME", "conversion_eff", conversion_eff, meta),
            *lines(lambda t: start_ms <= t <= stop_ms),
            _event(stop_ms, "INTERVAL_END", "power_measurement_stop", None, meta),
            *lines(lambda t: t > stop_ms),
        ]
    )
