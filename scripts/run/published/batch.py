"""Every run of a benchmark's import systems in one job.

The workflow imports every run of a benchmark's import systems in one job
(``python -m scripts import batch --plan PLAN --workers N``, :func:`import_batch`): a
process per log cost about 0.17 s of start-up against 25 ms of work (copy, parse, the
compliance checker, result.json), so a round of 1,500 logs was mostly Python starting. The
plan (:func:`batch_plan`, written by ``rules/import.smk``) lists each run's source, folder and
specification; the logs are shared out over ``--workers`` processes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from scripts.core import published_files
from scripts.run.published.run import Parsed, import_copy, unreadable_run
from scripts.run.result_json import write_result

PLAN_FORMAT = 1  # the batch plan's own version (rules/import.smk writes it, this reads it)


RUN_FILES = ("mlperf.log", "run.json", "result.json")  # what importing a run writes


def batch_plan(
    benchmark: str,
    bench: Mapping[str, Any],
    runs: Sequence[tuple[Path, str, dict[str, Any]]],
    *,
    compliance_ruleset: str | None,
    compliance_cache: str | None,
    sources: str = "",
) -> dict[str, Any]:
    """The plan of one batch job: the benchmark's quality, time-to-train event, MLPerf section
    and compliance ruleset, and per run (source, run folder, specification as
    :func:`scripts.run.published.run.import_run` takes it, without the mlperf section).
    ``sources``: a digest of what the runs are read from (the rules' plan file is named by its
    content, so a changed log gives another file)."""
    return {
        "format": PLAN_FORMAT,
        "benchmark": benchmark,
        "sources": sources,
        "quality": dict(bench["quality"]),
        "time_to_train": bench["log"]["time_to_train"],
        "mlperf": dict(bench.get("mlperf") or {}),
        "compliance_ruleset": compliance_ruleset,
        "compliance_cache": compliance_cache,
        "runs": [{"source": str(src), "dir": run_dir, "spec": spec} for src, run_dir, spec in runs],
    }


def read_plan(path: Path) -> dict[str, Any]:
    """A batch plan; ValueError names the file when it is not one this code reads."""
    try:
        plan = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a batch plan (not JSON: {exc})") from None
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT:
        raise ValueError(f"{path}: not a batch plan of format {PLAN_FORMAT}")
    return plan


def _import_one(task: tuple[Mapping[str, Any], Mapping[str, Any]]) -> dict[str, Any]:
    """Import one run of a plan and write its result.json: a summary line's facts, or
    ``error`` (the log cannot be read, or is another benchmark's) instead."""
    plan, run = task
    source, run_dir = Path(run["source"]), Path(run["dir"])
    spec = {**run["spec"], "mlperf": plan["mlperf"]}
    log, meta = run_dir / RUN_FILES[0], run_dir / RUN_FILES[1]
    try:
        try:
            parsed: Parsed = import_copy(source, spec, log, meta)[1]  # parsed once: the copy
        except published_files.RefusedFile as exc:  # a run without a result; the batch goes on
            parsed = None
            unreadable_run(source, spec, log, meta, str(exc))
        except OSError as exc:
            parsed = None
            unreadable_run(source, spec, log, meta, f"{source}: {exc.strerror or exc}")
        result = write_result(
            log,
            meta,
            plan["quality"],
            plan["time_to_train"],
            run_dir / RUN_FILES[2],
            compliance_ruleset=plan["compliance_ruleset"],
            compliance_cache=Path(plan["compliance_cache"]) if plan["compliance_cache"] else None,
            parsed=parsed,
        )
    except (OSError, ValueError) as exc:
        return {"dir": str(run_dir), "error": f"{source}: {exc}"}
    return {
        "dir": str(run_dir),
        "converged": result.converged,
        "time_to_train_s": result.time_to_train_s,
        "compliance": result.compliance,
        "compliance_detail": result.compliance_detail,
        "log_problems": result.log_problems,
    }


def import_batch(
    plan: Mapping[str, Any], *, workers: int = 1, progress: Callable[[str], None] = print
) -> list[dict[str, Any]]:
    """Import every run of ``plan`` (:func:`batch_plan`), over ``workers`` processes (forked,
    so each starts with this one's imports); one progress line per run, in plan order. Returns
    each run's facts (see :func:`_import_one`); a run that failed has ``error`` and the others
    are still imported."""
    tasks = [(plan, run) for run in plan["runs"]]
    n = len(tasks)
    if workers > 1 and n > 1:
        context = multiprocessing.get_context("fork")
        with concurrent.futures.ProcessPoolExecutor(min(workers, n), mp_context=context) as pool:
            chunk = max(1, n // (4 * workers))
            outcomes = pool.map(_import_one, tasks, chunksize=chunk)
            return [_progress(i, n, o, progress) for i, o in enumerate(outcomes, start=1)]
    return [_progress(i, n, _import_one(t), progress) for i, t in enumerate(tasks, start=1)]


def _progress(
    i: int, n: int, outcome: dict[str, Any], progress: Callable[[str], None]
) -> dict[str, Any]:
    if "error" in outcome:
        line = f"error: {outcome['error']}"
    else:
        state = "converged" if outcome["converged"] else "did NOT converge"
        line = f"{state}, time to train {outcome['time_to_train_s']} s"
        if outcome.get("log_problems"):
            line += f"; no result: {outcome['log_problems'][0]}"
        elif outcome["compliance"] == "fail":
            line += f"; fails the compliance check: {outcome['compliance_detail']}"
    progress(f"[{i}/{n}] {outcome['dir']}: {line}")
    return outcome


def batch_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scripts import batch",
        description="Import every run of a batch plan (rules/import.smk writes one per "
        "benchmark): copy each log, write its run.json and result.json.",
    )
    p.add_argument("--plan", type=Path, required=True, help="the batch plan (JSON)")
    p.add_argument("--workers", type=int, default=1, help="processes to share the logs over")
    args = p.parse_args(argv)
    if args.workers < 1:
        p.error("--workers must be at least 1")
    try:
        plan = read_plan(args.plan)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    outcomes = import_batch(plan, workers=args.workers, progress=lambda s: print(s, flush=True))
    failed = [o for o in outcomes if "error" in o]
    for o in failed:
        print(f"error: {o['error']}", file=sys.stderr)
    print(f"{plan['benchmark']}: {len(outcomes) - len(failed)} of {len(outcomes)} runs imported")
    return 1 if failed else 0
