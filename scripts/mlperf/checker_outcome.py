"""A published run's outcome as the round's compliance checker and result summarizer decide it.

mlperf-logging's result summarizer (``_compute_strong_score_standalone``) scores every
``result_*.txt`` that passes the round's compliance checker (``_read_result_file``) and has a
``run_start`` and a ``run_stop`` (``_query_run_start_stop``); every other log is a dropped run.
From v0.7 on the checker decides convergence itself: ``eval_accuracy``'s ``ATLEAST_ONE_CHECK``
(``training_<round>/closed_<benchmark>.yaml``) asks that *at least one* evaluation meets the
target, not the last one, and no rule asks for ``status: success`` (``common.yaml``: "status can
also be aborted"). So a published log that passes may end with an evaluation under the target
(v5.0 Stable Diffusion evaluates its checkpoints offline, after ``run_stop`` and in no
``samples_count`` order), or with ``status: aborted``, and still count.

For an imported run (backend ``import``) whose log passes a v0.7-or-later checker, this module
makes the outcome the summarizer's. Per rule:

=========================================== ==================================================
rule                                        follows
=========================================== ==================================================
converged when the checker passes           ``result_summarizer._read_result_file`` raises
                                            only for a failed check or a parse error
no ``run_start`` / no ``run_stop``: no      ``_query_run_start_stop`` raises ``ValueError``:
result                                      the run is dropped
time = the last ``run_start`` before the    ``_query_run_start_stop``'s loop (it stops at the
first ``run_stop``, to that ``run_stop``    first line that completes the pair)
``run_stop`` at or before ``run_start``,    ours, kept: the checker cannot see it, and the
a time that is not finite or longer than    summarizer would score a zero, negative or
MAX_TIME_TO_TRAIN_S: no result              infinite time (DESIGN.md section 4)
our quality, status, repeated events,       the checker accepted the log: these are *notes*
events before ``run_start``, malformed      in ``problems`` (``note: ...``), never a dropped
lines                                       run
=========================================== ==================================================

v0.6 keeps the workflow's own rules (its checker asks ``status == 'success'`` and checks no
target; v0.6 is scored by the workflow as NVIDIA scored it), and runs made here always do: their
target may be a local one, not the round's.
"""

from __future__ import annotations

import math
from typing import Any

from scripts.mlperf.log_events import ParsedLog
from scripts.mlperf.log_validity import MAX_TIME_TO_TRAIN_S

NOTE_PREFIX = "note: "
# rulesets whose checker decides convergence (ATLEAST_ONE_CHECK); 0.6.0's does not
FIRST_DECIDING_RULESET = (0, 7)


def checker_decides(imported: bool, status: str | None, ruleset: str | None) -> bool:
    """Whether the compliance verdict decides this run's outcome: an imported run (its backend
    imports published logs) whose log passed the checker of a v0.7-or-later training ruleset."""
    if not imported or status != "pass" or not ruleset:
        return False
    try:
        version = tuple(int(x) for x in str(ruleset).split(".")[:2])
    except ValueError:
        return False
    return version >= FIRST_DECIDING_RULESET


def summarizer_window(parsed: ParsedLog) -> tuple[float | None, float | None]:
    """(run_start, run_stop) in seconds as ``result_summarizer._query_run_start_stop`` picks
    them: reading in file order, each run_start replaces the last one, and the first line
    that completes the pair ends the search."""
    start: float | None = None
    stop: float | None = None
    for ev in parsed.events:
        if ev.key == "run_start":
            start = ev.time_s
        elif ev.key == "run_stop":
            stop = ev.time_s
        else:
            continue
        if start is not None and stop is not None:
            break
    return start, stop


def window_problems(start: float | None, stop: float | None) -> list[str]:
    """Why (start, stop) gives no time to train: a missing event (the summarizer drops the
    run), or the rules the workflow keeps on top of the checker."""
    problems = [f"no {k} event" for k, t in (("run_start", start), ("run_stop", stop)) if t is None]
    if problems or start is None or stop is None:
        return problems
    if not (math.isfinite(start) and math.isfinite(stop)):
        return [f"run_start {start!r} or run_stop {stop!r} is not a finite time"]
    if stop <= start:
        word = "before" if stop < start else "at"
        return [f"run_stop ({round(stop, 3)!r}) is {word} run_start ({round(start, 3)!r})"]
    if not stop - start < MAX_TIME_TO_TRAIN_S:
        return [f"time to train {stop - start:.6g} s is longer than {MAX_TIME_TO_TRAIN_S:.0e} s"]
    return []


def as_checker_decides(
    out: dict[str, Any], problems: list[str], parsed: ParsedLog, checker: str
) -> None:
    """Make ``out`` (a run outcome as :func:`scripts.mlperf.outcome.RunOutcome.to_dict` gives
    it) and ``problems`` the summarizer's reading of a log that passed ``checker``: converged
    with the summarizer's time unless :func:`window_problems` finds no time; every other
    problem the workflow's rules found becomes a note."""
    start, stop = summarizer_window(parsed)
    hard = window_problems(start, stop)
    why = f" (the {checker} accepts the log, so it counts as the result summarizer counts it)"
    notes = [p if p.startswith(NOTE_PREFIX) else f"{NOTE_PREFIX}{p}{why}" for p in problems]
    problems[:] = [*hard, *notes]
    out["log_problems"] = hard
    out["valid_log"] = not hard
    out["converged"] = not hard
    out["run_start_s"], out["run_stop_s"] = start, stop
    if hard:
        out["time_to_train_s"] = None
        out["epochs_to_converge"] = None
        return
    assert start is not None and stop is not None
    out["time_to_train_s"] = round(stop - start, 3)
