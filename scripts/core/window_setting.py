"""The M-of-N protocol's setting: ``statistics.window`` (every benchmark) or a benchmark's own
``window`` (which wins), the N of "score every window of N consecutive runs of the M runs and
report the median window" (:mod:`scripts.analysis.windows`).

:func:`window_of` is what a benchmark's tables use; :func:`window_problems` is the check the
schema cannot make (the window against the benchmark's runs and its olympic drop), one line per
problem naming the file and key that set the window and both numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["window_of", "window_problems"]


def _setting(config: Mapping[str, Any], name: str) -> tuple[Any, list[Any]]:
    """The window that applies to benchmark ``name`` and the key path that set it: the
    benchmark's ``window`` when it has one (not null), else ``statistics.window``."""
    bench = config.get("benchmarks", {}).get(name)
    own = bench.get("window") if isinstance(bench, Mapping) else None
    if own is not None:
        return own, ["benchmarks", name, "window"]
    statistics = config.get("statistics")
    shared = statistics.get("window") if isinstance(statistics, Mapping) else None
    return shared, ["statistics", "window"]


def window_of(config: Mapping[str, Any], name: str) -> int | None:
    """The M-of-N window of benchmark ``name``; None (every run scored as one set, the default)
    without one."""
    window, _ = _setting(config, name)
    return window if isinstance(window, int) and not isinstance(window, bool) else None


def minimum_window(bench: Mapping[str, Any]) -> int:
    """The fewest runs an olympic mean of the benchmark can drop from: 2 * drop + 1, at least 3
    (``drop`` is mlperf.olympic_drop, else 1, as the summary scores it)."""
    mlperf = bench.get("mlperf")
    drop = mlperf.get("olympic_drop") if isinstance(mlperf, Mapping) else None
    drop = drop if isinstance(drop, int) else max(1, int(bench.get("max_nonconverged", 1) or 1))
    return max(3, 2 * drop + 1)


def window_problems(
    config: Mapping[str, Any], locate: Callable[[list[Any]], str] = lambda path: str(path)
) -> list[str]:
    """One line per benchmark whose window cannot be used: more than its runs (M >= N is the
    protocol), or fewer runs than its olympic mean needs. ``locate`` names a key path with the
    file that set it (scripts.core.config's validate passes its own)."""
    found: list[str] = []
    benchmarks = config.get("benchmarks")
    campaign = config.get("campaign")
    in_campaign = campaign.get("benchmarks") if isinstance(campaign, Mapping) else None
    for name, bench in benchmarks.items() if isinstance(benchmarks, Mapping) else []:
        if not isinstance(bench, Mapping):
            continue
        window, path = _setting(config, name)
        if not isinstance(window, int) or isinstance(window, bool):
            continue  # none, or a type the schema names
        if path[0] == "statistics" and isinstance(in_campaign, list) and name not in in_campaign:
            # statistics.window is for the campaign's benchmarks: the round files define many
            # others (e.g. v0.6's 5-run benchmarks) that a campaign of 10 runs does not run
            continue
        where = locate(path)
        runs, need = bench.get("runs"), minimum_window(bench)
        if isinstance(runs, int) and window > runs:
            found.append(
                f"{where}: window {window} is more than benchmark {name}'s "
                f"runs ({runs}): the M-of-N protocol scores windows of N among M >= N runs"
            )
        if window < need:
            found.append(
                f"{where}: window {window} is less than the {need} runs an "
                f"olympic mean of benchmark {name} needs (it drops {(need - 1) // 2} at each end)"
            )
    return found
