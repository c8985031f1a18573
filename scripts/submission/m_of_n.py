"""What the M-of-N protocol means for a submission tree (a benchmark's ``window: N`` with
``runs: M``): every one of the M logs goes in, and the verdict says which window of N is the
one submitted, its score among the others, and which run each ``result_N.txt`` is.

The window is chosen as :mod:`scripts.analysis.windows` chooses it for summary.csv (every
window of N consecutive runs in run order, olympic-scored with the summarizer's drop for the
benchmark, the lower median), from each run's result.json (``time_to_train_s``,
``converged``). The scores are unscaled: the RCP scaling factor multiplies every window alike,
so it never changes which window is the median.

mlperf-logging's package checker wants exactly N result files, so under M-of-N with M > N it
always reports a run count problem: :func:`expected_run_count` says that in the protocol's
words (still a failed check, never read as a pass). The notes go in a file at the tree's top,
``M_OF_N.md``, outside ``results/`` (files beside the logs draw the checker's warnings).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scripts.analysis.windows import window_scores
from scripts.mlperf.rounds import RoundsError
from scripts.mlperf.rule_files import olympic_drop
from scripts.submission.plan import read_json_object

__all__ = ["NOTES", "expected_run_count", "m_of_n", "notes_text"]

NOTES = "M_OF_N.md"
_COUNT = re.compile(r"^run count: (\S+) holds (\d+) result_\*\.txt files")


def m_of_n(entry: Mapping[str, Any], root: Path) -> dict[str, Any] | None:
    """The window submitted of one (benchmark, system) under M-of-N, with every window's score
    and each result file's run; None without a window. Where no window can be scored (a
    window larger than the runs), ``problem`` says why."""
    size = entry.get("window")
    if size is None:
        return None
    names = [Path(r).name for r in entry["runs"]]
    said: dict[str, Any] = {
        "benchmark": entry["benchmark"],
        "system": entry["system"],
        "window": size,
        "runs": len(names),
        "results": {f"result_{n}.txt": name for n, name in enumerate(names)},
    }
    results = [read_json_object(root / r / "result.json") for r in entry["runs"]]
    times = [r.get("time_to_train_s") for r in results]
    converged = [bool(r.get("converged")) for r in results]
    try:
        drop = olympic_drop(entry["mlperf_name"])
        windows = window_scores(times, converged, size, drop=drop)
    except (ValueError, RoundsError) as exc:
        return {**said, "problem": str(exc)}
    first = windows.chosen_first_run
    said["window_first_run"] = names[first]
    said["window_runs"] = names[first : first + size]
    said["window_scores_s"] = [None if math.isinf(v) else v for v in windows.values]
    said["window_score_s"] = said["window_scores_s"][windows.chosen]
    return said


def expected_run_count(problem: str, windows: Mapping[str, Mapping[str, Any]]) -> str:
    """A run count problem of a folder under M-of-N, in the protocol's words (``windows``:
    folder -> its :func:`m_of_n`); any other problem as it is."""
    m = _COUNT.match(problem)
    said = windows.get(m.group(1)) if m else None
    if said is None:
        return problem
    chosen = said.get("window_runs") or []
    which = f"runs {chosen[0]}..{chosen[-1]}" if chosen else "no window (see m_of_n)"
    return (
        f"run count (expected under the M-of-N protocol; the check still fails): {m.group(1)} "
        f"holds all {said['runs']} logs, as the protocol keeps them, and mlperf-logging's "
        f"package checker wants exactly {said['window']}; the window submitted is {which} "
        f"(the verdict's m_of_n, and {NOTES} in the tree)"
    )


def notes_text(windows: list[dict[str, Any]]) -> str:
    """The tree's M_OF_N.md: per (benchmark, system), the window submitted, every window's
    score and the run behind each result file."""
    lines = [
        "# M-of-N",
        "",
        "Every run made goes in, in run order; the result submitted is the median window of N",
        "consecutive runs, each window olympic-scored (unscaled seconds; `inf`: no score).",
        "",
    ]
    for w in windows:
        lines += [f"## {w['benchmark']} on {w['system']}: window {w['window']} of {w['runs']}", ""]
        if "problem" in w:
            lines += [f"No window: {w['problem']}", ""]
        else:
            scores = ", ".join("inf" if s is None else f"{s:.6g}" for s in w["window_scores_s"])
            lines += [
                f"- window submitted: runs {w['window_runs'][0]}..{w['window_runs'][-1]} "
                f"(first run {w['window_first_run']}), score {w['window_score_s']}",
                f"- every window's score, from the first: {scores}",
            ]
        lines += [f"- {name}: {run}" for name, run in w["results"].items()] + [""]
    return "\n".join(lines)
