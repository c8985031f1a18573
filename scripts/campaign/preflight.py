"""The checks that run when the workflow loads, before Snakemake builds its plan, as data.

The snakemake the user started (not a job's own snakemake, which checks nothing) looks at the
campaign on disk and stops, or repairs what Snakemake itself would get wrong:

1. it takes the folder's lock (:mod:`scripts.campaign.locks`; not in a dry run, nor under
   ``--nolock``;
   ``--unlock`` only clears the lock record and checks nothing);
2. a finished run whose log changed since it was sealed stops the workflow; a corrupt
   ``result.json`` of an intact run is removed, so that step 5 parses it again
   (:mod:`scripts.run.seals`);
3. finished runs made under another configuration, dataset or environment stop it
   (:func:`scripts.campaign.finished_runs.incomparable_runs`);
4. a fetched source at another commit is fetched again; an image stamp that no longer matches
   the config (or whose image is gone) is removed, so the image is rebuilt, unless finished runs
   used that image: then it stops (the backend's ``stale_reason``, :mod:`scripts.run.backends`);
5. a run whose ``result.json`` is missing but whose ``mlperf.log`` and ``run.json`` exist is
   parsed (no training): Snakemake would train it again for its ``result.json``;
6. derived files that no longer describe the runs on disk are removed, so they are rebuilt
   (:mod:`scripts.campaign.stale`).
   Snakemake does not redo a job because one of its *inputs* was deleted: an up-to-date
   ``summary.csv`` hides a deleted ``run_04/mlperf.log``, yet deleting a run's log is the
   natural way to ask for that run again. So a run's ``result.json`` whose ``mlperf.log`` or
   ``run.json`` is gone goes, and a benchmark's ``runs.csv`` and ``summary.csv`` go when any of
   their runs lacks its result; a download whose configured checksum changed is kept as
   ``<file>.outdated``, with the manifest and unpacked tree built from it removed. Raw run logs
   are never touched;
7. a benchmark whose table settings (:func:`scripts.campaign.comparability.table_settings`:
   statistics, reference system, max_nonconverged) differ from the ones recorded in
   ``.snakemake/table-settings/``
   loses its summary, comparison, leaderboard, plots and report, which are made again: the
   workflow profile's rerun triggers never redo a rule for its params. Without a record (a
   campaign of an older workflow) the settings are recorded and nothing is removed;
8. a dataset tree that differs from its manifest (or is gone while finished runs used it) is
   unpacked again (:func:`scripts.data.restore.restore_tree`).

Before step 2, a real run takes the lock of each of its datasets (:func:`hold_datasets`,
:mod:`scripts.data.datalock`), so that a campaign in another working folder with the same data_dir
is never seen, or undone, half way; each is let go once the dataset is complete.

A dry run (``-n``, ``--summary``, ``--lint``...) changes nothing and says what a real run would
do; steps 2 and 3 and the stop of step 4 stop it as they stop a real run.

The shape, one module each: :func:`scripts.campaign.state.gather` reads what the checks need
into a :class:`~scripts.campaign.state.State` (the only reading besides the actions' ``apply``);
:func:`scripts.campaign.action_plan.plan_actions` turns it into a list of
:class:`~scripts.campaign.actions.Action` (pure: it follows the effect of each action on the
later checks, e.g. a removed corrupt result is parsed in step 5);
:func:`scripts.campaign.actions.apply` performs them in order, or in a dry run reports what a
real run does, and stops at the first :class:`~scripts.campaign.actions.Refuse` by raising
:class:`~scripts.campaign.invocation.Refused` (one message, for the workflow to show). The lock
is planned from the :class:`~scripts.campaign.invocation.Mode` alone
(:func:`~scripts.campaign.action_plan.lock_actions`) and taken before anything else is read:
whether another snakemake holds the folder can only be decided atomically, as it is taken.
:func:`run` does the three in order; the rules call it once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scripts.campaign.action_plan import lock_actions, plan_actions, success_actions
from scripts.campaign.actions import apply
from scripts.campaign.invocation import Mode, Refused, Say
from scripts.campaign.power_checks import power_problem
from scripts.campaign.state import gather
from scripts.campaign.topology import campaign_runs
from scripts.core.dataset_setting import dataset_section
from scripts.data import datalock
from scripts.data.tree import tree_manifest_path


def run(
    config: Mapping[str, Any],
    root: Path,
    argv: Sequence[str],
    *,
    job: bool,
    workflow_dir: Path,
    warn: Say,
) -> None:
    """The load-time checks: the power sources (an ``nvml`` source on a host without NVML
    stops it: :mod:`scripts.campaign.power_checks`), the lock, then the datasets' locks
    (:func:`hold_datasets`), then what :func:`scripts.campaign.state.gather` finds, planned and
    applied."""
    mode = Mode.of(argv, job=job)
    if mode.checks and (problem := power_problem(config, argv, os.environ, warn)):
        raise Refused(problem)
    apply(lock_actions(mode, root), mode.dry_run, warn)
    if mode.checks:
        held = hold_datasets(config, root, mode, warn)
        state = gather(config, root, argv, job=job, workflow_dir=workflow_dir)
        apply(plan_actions(state), mode.dry_run, warn)
        let_go_when_complete(held)


def hold_datasets(
    config: Mapping[str, Any], root: Path, mode: Mode, warn: Say
) -> list[tuple[datalock.Held, Path]]:
    """Take the lock of every dataset of the campaign (``<data_dir>/<b>.lock``, in name order)
    before anything of it is read, waiting while another process (a campaign in another
    working folder with the same data_dir) fetches, verifies or unpacks it: the waiting line
    names it. So this campaign sees the dataset as that one made it, and plans no job that
    would remove it. Not in a dry run (nothing changes). Returns each lock with the dataset's
    tree; raises :class:`Refused` after config ``data_lock_wait_s``."""
    if not mode.checks or mode.dry_run:
        return []
    data_dir = config["data_dir"].rstrip("/")
    wait = config.get(datalock.WAIT_KEY, datalock.DEFAULT_WAIT_S)
    token = datalock.campaign_token()  # the campaign's jobs go on under its locks
    held = []
    for b in campaign_datasets(config, root, _targets(mode.argv)):
        what = f"making {data_dir}/{b} (fetch, verify, unpack) for its campaign"
        try:
            lock = datalock.take(datalock.lock_path(root / data_dir, b), what, wait, warn, token)
        except datalock.DataLocked as exc:
            raise Refused(str(exc)) from None
        held.append((lock, root / data_dir / b / "dataset"))
    return held


def _targets(argv: Sequence[str]) -> list[str]:
    """The targets on snakemake's command line (``argv`` as sys.argv)."""
    # lazy: snakemake's own parser, loaded already in the snakemake that runs this
    from snakemake.cli import get_argument_parser

    try:
        return [str(t) for t in get_argument_parser().parse_known_args(argv[1:])[0].targets]
    except SystemExit:  # a command line snakemake itself refuses: it says why
        return []


def campaign_datasets(config: Mapping[str, Any], root: Path, targets: Sequence[str]) -> list[str]:
    """The benchmarks (with dataset files, in name order) whose dataset an invocation with
    ``targets`` may make: those a target lies under (``results/<b>`` or ``<data_dir>/<b>``),
    or all of them when a target lies under none (no target: the default one, a rule name)."""
    names = sorted(b for b, bench in config["benchmarks"].items()
                   if dataset_section(bench).get("files"))  # fmt: skip
    data_dir = root / config["data_dir"].rstrip("/")
    wanted: set[str] = set()
    for target in targets:
        path = Path(os.path.abspath(root / target))
        under = {
            b
            for b in config["benchmarks"]
            if path.is_relative_to(root / "results" / b) or path.is_relative_to(data_dir / b)
        }
        if not under:
            return names
        wanted |= under
    return sorted(wanted & set(names)) if targets else names


def let_go_when_complete(held: Sequence[tuple[datalock.Held, Path]]) -> None:
    """Let go of each dataset's lock once its tree is complete (its manifest is written last),
    now or when this campaign's jobs have made it; else when this snakemake ends."""
    for lock, tree in held:

        def complete(tree: Path = tree) -> bool:
            return tree.is_dir() and tree_manifest_path(tree).exists()

        if complete():
            lock.release()
        else:
            datalock.release_when(lock, complete)


def after_success(
    config: Mapping[str, Any], root: Path, argv: Sequence[str], *, job: bool, warn: Say
) -> None:
    """What the snakemake the user started does after a successful invocation."""
    mode = Mode.of(argv, job=job)
    if mode.job:
        return  # nothing to read: a job's own snakemake has no campaign to refresh
    runs = campaign_runs(config)
    apply(success_actions(mode, Path(os.path.relpath(root)), runs), mode.dry_run, warn)
