"""Python's cycle collector while Snakemake plans a campaign (``rules/common.smk`` calls
:func:`for_the_plan` once the configuration is loaded and checked).

The plan of a campaign of 10,000 runs is some 10,000 jobs, each with its files, wildcards and
lists, all alive until Snakemake exits. Python's cycle collector scans the youngest containers
after every 700 new ones and, from time to time, every container there is, Snakemake's modules
and the configuration included; it finds next to no garbage among them. :func:`for_the_plan`
takes what is loaded by then out of its scans (``gc.freeze``) and lets it wait for
:data:`FIRST_GENERATION` new containers, as mypy does for its own build (200,000). A dry run of
1,000 runs then executes 4.7% fewer instructions (callgrind; docs/PERFORMANCE.md 15.4).

The cost: garbage in a cycle waits longer to be freed, at most the newest
:data:`FIRST_GENERATION` containers, and a cycle among what was frozen is never collected (what
is loaded by then lives as long as the process anyway; reference counting still frees the rest).
"""

from __future__ import annotations

import gc

# new containers between two scans of the youngest generation (Python's default: 700)
FIRST_GENERATION = 100_000


def for_the_plan() -> None:
    """Freeze what is loaded now and scan the young generation less often (this process)."""
    gc.freeze()
    _, second, third = gc.get_threshold()
    gc.set_threshold(FIRST_GENERATION, second, third)
