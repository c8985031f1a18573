"""The campaign's topology: which systems it runs, which of them have runs of a benchmark, and
the ids of those runs. **Reads the disk**: an import system's runs are the result files of its
folder, so :func:`import_folder`, :func:`can_produce`, :func:`benchmark_systems`,
:func:`system_runs`, :func:`system_run_ids` and :func:`campaign_runs` look at that folder.

- :func:`campaign_systems`: the systems a campaign runs;
- :func:`benchmark_systems`: which of them have runs of a benchmark (a system that trains where
  the benchmark has an implementation for its backend, an import system where its folder holds
  the benchmark's published logs);
- :func:`system_run_ids`: the ids of those runs. A run's *number* (``run``) is an ``int``
  everywhere in Python and in the JSON files (``run.json`` and ``result.json`` hold
  ``"run": 7``). Its *id* (``run_id``) is the text that names its files, ``07`` or ``007``: it
  is made only by ``layout.run_id`` and read back only by ``layout.parse_run_id``, at the
  boundary of paths and wildcards.

Whether a system trains or imports its runs its backend answers (:mod:`scripts.run.backends`:
``imports``, ``can_run``); nothing here names one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.core import layout
from scripts.core.config import WORKFLOW_DIR
from scripts.core.layout import benchmark_folder, result_files
from scripts.run import backends


def campaign_systems(config: Mapping[str, Any]) -> list[str]:
    """The systems a campaign runs: ``campaign.systems`` or every defined system."""
    return list(config["campaign"].get("systems") or config["systems"])


def import_dir(system: Mapping[str, Any]) -> Path:
    """An import system's folder, '{workflow_dir}' replaced (relative to the working dir)."""
    return Path(system["import_dir"].replace("{workflow_dir}", str(WORKFLOW_DIR)))


def import_folder(config: Mapping[str, Any], benchmark: str, system: str) -> Path | None:
    """The folder of result_*.txt that an import system has for a benchmark, or None (not an
    import system, a benchmark without mlperf_name, or no such folder with results): its
    mlperf_name's folder, else one of its folder_aliases' (scripts.core.layout)."""
    sys_, bench = config["systems"][system], config["benchmarks"][benchmark]
    if not backends.get(sys_["backend"]).imports:
        return None
    return benchmark_folder(import_dir(sys_), bench)


def can_produce(config: Mapping[str, Any], benchmark: str, system: str) -> bool:
    """Whether a system has runs of a benchmark: an import system when it has a folder of
    the benchmark's results, any other system when the benchmark has an implementation."""
    backend = config["systems"][system]["backend"]
    if backends.get(backend).imports:  # its runs are the files of its folder
        return import_folder(config, benchmark, system) is not None
    implementation = config["benchmarks"][benchmark].get("implementation")
    if implementation is None:
        return False
    allowed = implementation.get("backends")
    if allowed and backend not in allowed:
        return False  # e.g. an implementation that only runs in its container
    return backends.get(backend).can_run(implementation)  # e.g. a container section


def benchmark_systems(config: Mapping[str, Any], benchmark: str) -> list[str]:
    """The systems of the campaign that have runs of ``benchmark``."""
    return [s for s in campaign_systems(config) if can_produce(config, benchmark, s)]


def system_runs(config: Mapping[str, Any], benchmark: str, system: str) -> int:
    """How many runs (benchmark, system) has: the configured runs, or for an import system
    one per result file in its folder (run N is the N-th file by number)."""
    folder = import_folder(config, benchmark, system)
    if folder is not None:
        return len(result_files(folder))
    return int(config["benchmarks"][benchmark]["runs"])


def system_run_ids(config: Mapping[str, Any], benchmark: str, system: str) -> list[str]:
    """The ids of the runs of (benchmark, system), for their paths: ``01``, ``02``, ..."""
    return run_ids(system_runs(config, benchmark, system))


def run_ids(runs: int) -> list[str]:
    """The ids of runs 1 .. ``runs``: ``01``, ``02``, ... (scripts/core/layout.py formats them)."""
    return layout.run_ids(runs)


@dataclass(frozen=True)
class CampaignRuns:
    """The run ids that one system of the campaign has of one benchmark."""

    benchmark: str
    system: str
    runs: tuple[str, ...]


def campaign_runs(config: Mapping[str, Any]) -> tuple[CampaignRuns, ...]:
    """Every (benchmark, system) of the campaign that has runs, with its run ids, in order."""
    return tuple(
        CampaignRuns(b, s, tuple(system_run_ids(config, b, s)))
        for b in config["benchmarks"]
        for s in benchmark_systems(config, b)
    )
