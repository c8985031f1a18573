"""What else used the machine while a run trained: the load average, and the CPU time that
processes outside the run used per second of the run.

A run that shares its cores with other work is slower for reasons that have nothing to do with
the system under test (measured here: a default campaign on 2 busy cores gave a cv of 0.79,
0.28 on a quiet machine). :class:`HostMeter` costs two reads of ``/proc/stat`` and two
``getrusage`` calls per run, nothing while it trains:

- the machine's busy CPU time over the run (``/proc/stat``: user, nice, system, irq, softirq of
  every CPU; not iowait, idle or steal);
- minus the run's own CPU time: the runner's children (the trainer's whole process tree, which
  the runner reaps, so ``getrusage(RUSAGE_CHILDREN)`` holds it) plus the runner itself, plus
  what a backend reports for processes that are not the runner's children (a container's);
- = the others' CPU, per second of the run: ``host_busy`` in cores (0.0 on a quiet machine,
  about 1.0 beside one busy process).

On a Slurm node the figures are the node's (an exclusive job's node is the job's own view).
"""

from __future__ import annotations

import json
import os
import resource
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")
# a run counts as disturbed when others used at least this many cores on average during it
BUSY_CORES = 0.25
_BUSY_FIELDS = (0, 1, 2, 5, 6)  # user nice system (idle iowait) irq softirq of the cpu line


def busy_cpu_s(stat: Path = Path("/proc/stat")) -> float:
    """The machine's busy CPU seconds since boot, all CPUs."""
    with stat.open() as fh:
        fields = fh.readline().split()
    if not fields or fields[0] != "cpu":
        raise ValueError(f"{stat}: no cpu line")
    return sum(int(fields[1 + i]) for i in _BUSY_FIELDS) / TICK


def own_cpu_s() -> float:
    """CPU seconds of this process and of its reaped children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def load_average() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


@dataclass(frozen=True)
class HostLoad:
    """What the machine did during one run (the ``host`` record of run.json)."""

    seconds: float  # wall time measured
    cpus: int
    busy_cpu_s: float  # every process, the run's included
    run_cpu_s: float  # the run's own processes and the runner
    host_busy: float  # the others' CPU per second of the run, in cores
    load_1m_start: float
    load_1m_end: float

    @property
    def disturbed(self) -> bool:
        return self.host_busy >= BUSY_CORES

    def to_meta(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


class HostMeter:
    """Started just before the trainer, finished just after the runner reaped it."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self._busy0 = busy_cpu_s()
        self._own0 = own_cpu_s()
        self._load0 = load_average()

    def finish(self, extra_run_cpu_s: float = 0.0) -> HostLoad:
        """``extra_run_cpu_s``: the run's CPU that is not the runner's children's (a
        container's processes, as its backend measured them)."""
        seconds = max(time.monotonic() - self._t0, 1e-6)
        busy = busy_cpu_s() - self._busy0
        own = own_cpu_s() - self._own0 + extra_run_cpu_s
        return HostLoad(
            seconds=seconds,
            cpus=os.cpu_count() or 1,
            busy_cpu_s=busy,
            run_cpu_s=own,
            # clock ticks and rusage round differently: never below 0
            host_busy=max(0.0, busy - own) / seconds,
            load_1m_start=self._load0,
            load_1m_end=load_average(),
        )


def other_runs(marker: Path) -> list[str]:
    """The campaign's other runs whose trainers are alive on this host now: the running markers
    beside ``marker`` (``logs/running/<benchmark>/<system>/run_<id>.json``, :mod:`runner`),
    named ``<benchmark>/<system>/run_<id>``, those of other hosts (Slurm jobs on a shared file
    system) left out. A node's power command reads them too (:mod:`power_sampler`)."""
    top = marker.parents[2]
    host = socket.gethostname()
    found = []
    for path in sorted(top.glob("*/*/run_*.json")):
        if path == marker:
            continue
        try:
            if json.loads(path.read_text()).get("host") != host:
                continue
        except (OSError, ValueError, AttributeError):
            continue  # removed as its run ended, or being written: not counted
        found.append(str(path.relative_to(top).with_suffix("")))
    return found
