"""The power result of a run made here, scored as a published one: its ``power/node_0.txt``
(written by :mod:`scripts.run.power_sampler` in MLPerf's power log format) read by
:func:`scripts.mlperf.power.read_power_file`, and its energy computed by
:func:`scripts.mlperf.power.energy_j`, the result summarizer's own arithmetic
(``_compute_power_node``): ``conversion_eff * integral * time_to_train / window / 1000``.

run.json's ``power`` of such a run has the shape of a published run's (``result_name``,
``files``, ``problems``, ``scorable``), so result.json, runs.csv and summary.csv treat both
alike. What keeps the energy from being scored (``scorable`` false, ``energy_j`` empty; every
one named in ``power_problems``, never a reason to fail the run):

- the source could not start, or the log could not be written or read back;
- the readings miss more than :data:`MAX_GAP_SHARE` of the window (a source that failed or
  stopped answering: run.json's ``power_sampling.gaps``);
- a multi-node run (only the runner's node, node 0, is measured);
- a ``command`` source (the whole node) while other runs of the campaign trained on the same
  host (run.json's ``power_sampling.concurrent_runs``): their power is in the readings;
- the window does not cover the log's ``run_start`` to ``run_stop`` (checked in
  :func:`result_fields`, which knows the log).

Named without keeping the energy from being scored: fewer than :data:`MIN_READINGS` readings
(the power rules' minimum) and a gap shorter than that share (the summarizer weighs the next
reading over it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scripts.mlperf import power

MIN_READINGS = 60  # MLPerf Training's power rules: at least 60 samples per run, 1 Hz or faster
MAX_GAP_SHARE = 0.05  # of the window, missed by failed samples, beyond which no energy is given
SLOW_MARGIN = 1.05  # a median spacing this much over the rate asked for is named
_RUN_KEYS = (b'"run_start"', b'"run_stop"')


def run_window(log_path: Path) -> tuple[float, float] | None:
    """The run's (run_start, run_stop) in the log's milliseconds, widened to cover whichever
    the result's times take (the first ``run_start`` and, as the summarizer's
    ``_query_run_start_stop``, the last one before the first ``run_stop``): the earliest
    run_start and the latest run_stop. None without both, or when the log cannot be read
    (the run then fails on its log anyway). Only lines naming either key are parsed."""
    starts: list[float] = []
    stops: list[float] = []
    try:
        with open(log_path, "rb") as fh:
            for line in fh:
                at = line.rfind(b":::MLLOG ")
                if at < 0 or not any(k in line for k in _RUN_KEYS):
                    continue
                try:
                    event = json.loads(line[at + 9 :])
                    key, t = event["key"], float(event["time_ms"])
                except (ValueError, KeyError, TypeError, RecursionError):
                    continue
                if math.isfinite(t) and key in ("run_start", "run_stop"):
                    (starts if key == "run_start" else stops).append(t)
    except OSError:
        return None
    return (min(starts), max(stops)) if starts and stops else None


def _rate_problem(sampling: Mapping[str, Any]) -> str | None:
    """The sampling rate achieved, when it is slower than the one asked for (``interval_s``,
    and at most 1 s: the power rules' 1 Hz) by more than :data:`SLOW_MARGIN`."""
    median = sampling.get("median_spacing_s")
    asked = max(float(sampling.get("interval_s") or 1.0), 1.0)
    if median is None or float(median) <= asked * SLOW_MARGIN:
        return None
    return (
        f"the {sampling.get('source')} source gave a sample every {median:g} s (median; the "
        f"longest wait {sampling.get('max_spacing_s'):g} s), slower than the "
        f"{asked:g} s asked for (power.interval_s, the power rules' 1 Hz): each call takes "
        "longer than the interval"
    )


def _gap_problems(sampling: Mapping[str, Any]) -> tuple[list[str], bool]:
    """The problems of the sampler's gaps, and whether they keep the energy from being scored."""
    gaps = list(sampling.get("gaps") or [])
    if not gaps:
        return [], False
    window = float(sampling.get("window_s") or 0.0)
    gap_s = float(sampling.get("gap_s") or 0.0)
    share = gap_s / window if window > 0 else 1.0
    first = gaps[0]
    where = (
        f"from {first['from_s']} s to the stop ({first['to_s']} s): it stopped answering"
        if first.get("until_stop")
        else f"from {first['from_s']} s to {first['to_s']} s"
    )
    more = len(gaps) - 1 + int(sampling.get("gaps_not_shown") or 0)
    text = (
        f"the {sampling.get('source')} source failed {sampling.get('failed')} of "
        f"{sampling.get('samples')} samples: a gap {where} ({first['error']})"
        + (f" and {more} more gap(s)" if more else "")
        + f"; {gap_s:g} s of the {window:g} s window ({share:.1%}) has no reading"
    )
    blocking = share > MAX_GAP_SHARE
    if blocking:
        text += f", more than {MAX_GAP_SHARE:.0%}: no energy"
    return [text], blocking


def _node_file(run_dir: Path, sampling: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The power log's facts (as a published node file's) and its problems: what the reader
    finds, and fewer than :data:`MIN_READINGS` readings in the window (and why)."""
    rel = str(sampling["file"])
    record: dict[str, Any] = {"name": Path(rel).name, "kind": "node", "index": 0}
    try:
        record.update(power.read_power_file(run_dir / rel, "node", rel))
    except (OSError, power.PowerError) as exc:
        record["problems"] = [str(exc) if isinstance(exc, power.PowerError) else f"{rel}: {exc}"]
    problems = list(record["problems"])
    readings = int(record.get("readings") or 0)
    median, asked = sampling.get("median_spacing_s"), sampling.get("interval_s")
    slow = median is not None and asked and float(median) > float(asked) * SLOW_MARGIN
    if readings < MIN_READINGS:
        why = (
            f"a sample every {median:g} s, not every {asked} s: the source is slower than "
            "power.interval_s, a faster command gives more"
            if slow
            else f"sampled every {asked} s: a shorter power.interval_s gives more"
        )
        problems.append(
            f"{rel} has {readings} readings, fewer than the {MIN_READINGS} MLPerf's power "
            f"rules require ({why})"
        )
    return record, problems


def _shared_problem(sampling: Mapping[str, Any]) -> str | None:
    """A ``command`` source (the whole node) while other runs trained on the host."""
    shared = [str(r) for r in sampling.get("concurrent_runs") or []]
    if not shared or sampling.get("source") != "command":
        return None
    return (
        f"the command source reads the whole node, and {len(shared)} other run(s) trained "
        f"on this host at the same time ({', '.join(shared[:5])}"
        + (", ..." if len(shared) > 5 else "")
        + "): their power is in this run's readings: no energy"
    )


def own_power(
    run_dir: Path, sampling: Mapping[str, Any] | None, nodes: int = 1
) -> dict[str, Any] | None:
    """run.json's ``power`` of a run made here: its power log's facts and problems (strings
    starting with ``power:``); None when nothing was sampled (``sampling`` None)."""
    if sampling is None:
        return None
    problems: list[str] = []
    files: list[dict[str, Any]] = []
    blocked = bool(sampling.get("problem"))
    if blocked:
        problems.append(str(sampling["problem"]))
    if sampling.get("file"):
        record, more = _node_file(run_dir, sampling)
        files.append(record)
        problems += more
    if slow := _rate_problem(sampling):
        problems.append(slow)
    gap_text, gap_blocks = _gap_problems(sampling)
    problems += gap_text
    if shared := _shared_problem(sampling):
        problems.append(shared)
        blocked = True
    if nodes > 1:
        problems.append(
            f"a run of {nodes} nodes: only node 0 (the runner's) is measured, so the "
            "energy of the others is missing: no energy"
        )
    scorable = bool(files) and not blocked and not gap_blocks and nodes <= 1
    return {
        "result_name": None,
        "files": files,
        "problems": [f"power: {p}" for p in problems],
        "scorable": scorable and not any(f["problems"] for f in files),
    }


def window_problem(
    block: Mapping[str, Any], run_start_s: float | None, run_stop_s: float | None
) -> str | None:
    """Why the power log's window does not cover the log's run_start to run_stop, or None."""
    node = next((f for f in block.get("files") or [] if f.get("kind") == "node"), None)
    if node is None or run_start_s is None or run_stop_s is None:
        return None
    start, stop = float(node["start_ms"]), float(node["stop_ms"])
    run_start, run_stop = round(run_start_s * 1000), round(run_stop_s * 1000)
    if start <= run_start and stop >= run_stop:
        return None
    return (
        f"power: the measurement window ({start:.0f} to {stop:.0f} ms) does not cover the "
        f"log's run_start to run_stop ({run_start} to {run_stop} ms): no energy"
    )


def result_fields(
    block: Mapping[str, Any] | None,
    sampling: Mapping[str, Any] | None,
    time_to_train_s: Any,
    run_start_s: float | None,
    run_stop_s: float | None,
) -> dict[str, Any]:
    """result.json's ``energy_j`` and ``power_problems``: a published run's as
    :func:`scripts.mlperf.power.result_fields` gives them; a run sampled here (``sampling``)
    also needs its window to cover the log's run."""
    if sampling is None or block is None:
        return power.result_fields(block, time_to_train_s)
    problem = window_problem(block, run_start_s, run_stop_s)
    if problem is None:
        return power.result_fields(block, time_to_train_s)
    return {"energy_j": None, "power_problems": [*block.get("problems", []), problem]}
