"""The runs' power logs in a submission tree, where MLPerf's power rules can take them.

An MLPerf Training power submission keeps, beside each ``results/<system>/<benchmark>/
result_N.txt``, its node's power log as ``power/result_N/node_K.txt`` (``result_N`` is the
result file's name up to its first ``.``; mlperf-logging 4.1.68's ``power_checker.py`` wants a
``power/result_N/`` folder for every result file once ``power/`` exists, the files of each
named ``node_0`` .. ``node_<n-1>``, and as many node files in every run; the result
summarizer's ``_has_power`` scores the folder's energy whenever ``power/`` is there, and its
``_compute_total_power`` asserts a ``node_*.txt`` for every result). A run made here with a
``power.source`` writes ``power/node_0.txt`` in that format in its own folder
(:mod:`scripts.run.power_sampler`).

Power goes into the tree for one (benchmark, system) only when every run the tree holds has a
power log from a ``command`` source (the node's power, the workflow's stand-in for MLPerf's
wall-plug measurement), each copied byte for byte to ``power/result_N/node_0.txt``. It is left
out, and a note says why, when:

- a run measured with ``nvml``: the GPUs' power only, never MLPerf's node power;
- a run has no power log (another source, none, a source that could not start, a file gone);
- a run's energy was not scored here (result.json's ``energy_j`` empty while it has a time to
  train: gaps over 5%, other runs on the node, more than one node, a window that misses the
  run): the summarizer would score the file as it is.

A (benchmark, system) whose runs were never sampled gets no power and no note; one whose
power goes in gets a note that says so and what the package checker warns of it.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.core.run_records import RunRecord
from scripts.mlperf.power import POWER_DIR
from scripts.submission.plan import read_json_object

__all__ = ["PowerChoice", "add_power", "choose"]

NODE_SOURCE = "command"  # the source that reads the node (as MLPerf's power runs do)
INCLUDED = (
    "{}: each run's power/node_0.txt (power.source command) is in the tree as "
    "power/result_N/node_0.txt, checked by the package checker's power checks; the power/ "
    "folder beside the logs draws its warnings 'Detected N total files ... do not conform' and "
    "'Unknown files in result directory', as every published power submission's does"
)


@dataclass
class PowerChoice:
    """Whether a (benchmark, system)'s power goes in: each run's log (in run order) or none,
    the sources its runs were measured with, and why not."""

    files: list[Path]  # one per run, result_N's log at N; empty: no power in the tree
    sources: list[str]  # each run's power source ("none" when it was not sampled)
    note: str | None = None  # what went in, or why it was left out (None: never measured)


def _names(runs: list[str]) -> str:
    shown = ", ".join(Path(r).name for r in runs[:6])
    return shown + (f" and {len(runs) - 6} more" if len(runs) > 6 else "")


def _no_log_reason(sampling: Mapping[str, Any] | None) -> str:
    """Why one run has no power log to submit, in a few words."""
    if not sampling or sampling.get("source") in (None, "none"):
        return "not sampled"
    if sampling.get("source") != NODE_SOURCE:
        return f"source {sampling.get('source')}"
    if not sampling.get("file"):
        return str(sampling.get("problem") or "no power log written")
    return f"{sampling.get('file')} is gone"


def _unscored(root: Path, run: str) -> str | None:
    """Why the workflow gave a run with a time to train no energy (its first power problem
    that says so), or None when it scored it or the run has no time."""
    result = read_json_object(root / run / "result.json")
    if result.get("energy_j") is not None or result.get("time_to_train_s") is None:
        return None
    problems = [str(p) for p in result.get("power_problems") or []]
    said = next((p for p in problems if "no energy" in p), problems[0] if problems else None)
    return said or "no energy_j in result.json"


def choose(entry: Mapping[str, Any], root: Path) -> PowerChoice:
    """Which power logs of one (benchmark, system) entry go into its tree, or why none do."""
    where = f"{entry['benchmark']} on {entry['system']}"
    runs = list(entry["runs"])
    samplings = [RunRecord.read(root / run / "run.json").power_sampling for run in runs]
    sources = [str((s or {}).get("source") or "none") for s in samplings]
    if all(s == "none" for s in sources):
        return PowerChoice([], sources)
    nvml = [r for r, s in zip(runs, sources, strict=True) if s == "nvml"]
    if nvml:
        return PowerChoice([], sources, (
            f"{where}: no power in the tree: runs {_names(nvml)} were measured with "
            "power.source nvml, the GPUs' power only, not the node's power MLPerf's power "
            "rules measure (a power submission needs power.source command reading the node, "
            "e.g. ipmitool dcmi power reading, for every run)"
        ))  # fmt: skip
    logs: list[Path | None] = []
    for run, sampling in zip(runs, samplings, strict=True):
        log = root / run / str((sampling or {}).get("file") or "")
        ok = bool(sampling and sampling.get("source") == NODE_SOURCE and sampling.get("file"))
        logs.append(log if ok and log.is_file() else None)
    missing = [
        f"{Path(run).name} ({_no_log_reason(s)})"
        for run, s, log in zip(runs, samplings, logs, strict=True)
        if log is None
    ]
    if missing:
        return PowerChoice([], sources, (
            f"{where}: no power in the tree: {len(missing)} of its {len(runs)} runs have no "
            f"power log from a command source ({', '.join(missing[:6])}"
            + (", ..." if len(missing) > 6 else "")
            + "): MLPerf's power rules want one for every result file (the package checker "
            "refuses a result without one); make those runs again with the system's power "
            "command"
        ))  # fmt: skip
    unscored = [(run, why) for run in runs if (why := _unscored(root, run))]
    if unscored:
        run, why = unscored[0]
        return PowerChoice([], sources, (
            f"{where}: no power in the tree: the workflow gave {len(unscored)} run(s) no "
            f"energy ({_names([r for r, _ in unscored])}; {Path(run).name}: {why}), and the "
            "result summarizer would score their power logs as they are"
        ))  # fmt: skip
    return PowerChoice([log for log in logs if log is not None], sources, INCLUDED.format(where))


def add_power(entry: Mapping[str, Any], root: Path, folder: Path) -> dict[str, Any]:
    """Copy the entry's power logs into ``folder`` (its results/<system>/<benchmark>/) as
    ``power/result_N/node_0.txt`` when :func:`choose` takes them; the verdict's record of it:
    ``included``, ``sources`` (the distinct ones) and ``note`` (also the verdict's notes)."""
    choice = choose(entry, root)
    for n, log in enumerate(choice.files):
        target = folder / POWER_DIR / f"result_{n}" / "node_0.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, target)
    return {
        "included": bool(choice.files),
        "sources": sorted(set(choice.sources)),
        "note": choice.note,
    }
