"""What this snakemake was asked to do (:class:`Mode`, from its command line and exec mode),
and how the load-time checks (:mod:`scripts.campaign.preflight`) answer: :class:`Refused`
stops the workflow with one message, ``Say`` shows a warning (Snakemake's logger).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

Say = Callable[[str], None]  # how a warning is shown (Snakemake's logger)
DRY_RUN_FLAGS = {
    "--dry-run",
    "--dryrun",
    "--summary",
    "--detailed-summary",
    "--lint",
    "--list-changes",
    "--lc",
    "--list-code-changes",
    "--list-input-changes",
    "--list-params-changes",
    "--dag",
    "--rulegraph",
    "--filegraph",
    "--d3dag",
    "--list-rules",
    "--list",
    "--list-target-rules",
    "--lt",
    "--report",
}


class Refused(Exception):
    """The workflow must stop before its plan is built (the message says why and what to do)."""


def is_dry_run(argv: Sequence[str]) -> bool:
    """Whether snakemake's command line asks only to look (dry run, summary, lint...)."""
    for arg in argv:
        if arg in DRY_RUN_FLAGS or arg.split("=")[0] in DRY_RUN_FLAGS:
            return True
        if (
            arg.startswith("-")
            and not arg.startswith("--")
            and "n" in arg[1:]
            and arg[1:].isalpha()
        ):
            return True  # -n, -np, -pn ...
    return False


@dataclass(frozen=True)
class Mode:
    """What this snakemake was asked to do, from its command line and exec mode."""

    argv: tuple[str, ...]
    dry_run: bool
    unlock: bool  # --unlock: clear the locks, check nothing
    nolock: bool  # --nolock: take no lock (the checks still run)
    job: bool  # a job's own snakemake (cluster or subprocess executor): it checks nothing

    @classmethod
    def of(cls, argv: Sequence[str], *, job: bool = False) -> Mode:
        return cls(
            argv=tuple(argv),
            dry_run=is_dry_run(argv),
            unlock="--unlock" in argv,
            nolock="--nolock" in argv,
            job=job,
        )

    @property
    def checks(self) -> bool:
        """Whether the campaign is checked: only by the snakemake the user started, and not
        under --unlock (a check that stops it would leave Snakemake's lock files while our
        record is gone, and the next invocation could no longer name the holder)."""
        return not self.job and not self.unlock
