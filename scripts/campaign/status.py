"""Where a campaign stands: per benchmark and system, which runs are done, failed, running,
interrupted, trained but not parsed yet, or missing. It reads the files only (no Snakemake,
no lock), so it works while a campaign runs. A run whose runner is on another host (a Slurm job
on a compute node) is checked with ``squeue`` instead of its process id.

    python -m scripts status [--configfile OVERLAY.yaml ...]

Give the same --configfile overlays as the snakemake command of the campaign.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.campaign import config_checks, topology
from scripts.core import formats, layout
from scripts.core.config import ConfigError
from scripts.core.run_records import ResultRecord, RunRecord
from scripts.run import cluster, seals


@dataclass(slots=True)
class RunState:
    run_id: str  # the run's id, as its folder names it (run_<run_id>)
    state: str  # done, tampered, corrupt, failed, running, interrupted, trained, missing
    detail: str


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _last_failure(root: Path, benchmark: str, system: str, run_id: str) -> tuple[Path, str] | None:
    attempts = sorted(
        (root / "logs" / "failed" / benchmark / system).glob(layout.failed_logs_glob(run_id)),
        key=lambda p: p.stat().st_mtime,
    )
    if not attempts:
        return None
    lines = attempts[-1].read_text(errors="replace").splitlines()
    reason = next(
        (ln.split("attempt failed: ", 1)[1] for ln in reversed(lines) if "attempt failed: " in ln),
        "",
    )
    last = next((ln for ln in reversed(lines) if ln.strip() and not ln.startswith("#")), "")
    return attempts[-1], f"{reason}; last line: {last[:120]}"


def _check_run_json(path: Path) -> None:
    """Raise NewerFormat for a run.json of a newer workflow; one that cannot be read is named
    by the workflow when it parses the run."""
    try:
        RunRecord.read(path)
    except (OSError, formats.CorruptFile):  # NotAnObject too
        pass


def run_state(root: Path, benchmark: str, system: str, run_id: str) -> RunState:
    d = layout.run_dir(root, benchmark, system, run_id)
    marker = layout.running_marker(root, benchmark, system, run_id)
    if (d / "result.json").exists():
        return finished_run_state(d, benchmark, system, run_id)
    if marker.exists():
        info = json.loads(marker.read_text())
        host = info.get("host")
        if host and host != socket.gethostname():  # e.g. a Slurm job on a compute node
            return remote_run_state(run_id, info, d)
        if _alive(int(info["pid"])):
            return RunState(
                run_id,
                "running",
                f"since {info['started_utc']} (pid {info['pid']}), log {d / 'mlperf.log'}",
            )
        return RunState(run_id, "interrupted", "its runner is gone; the next invocation redoes it")
    if (d / "mlperf.log").exists() and (d / "run.json").exists():
        _check_run_json(d / "run.json")
        return RunState(run_id, "trained", "log complete, result not parsed yet")
    failure = _last_failure(root, benchmark, system, run_id)
    if failure:
        path, why = failure
        return RunState(run_id, "failed", f"{why} (log {path.relative_to(root)})")
    return RunState(run_id, "missing", "")


def finished_run_state(d: Path, benchmark: str, system: str, run_id: str) -> RunState:
    """A run with a result.json: done, or tampered (its log changed since it was sealed), or
    corrupt (its result.json is not valid JSON: the next invocation re-parses it)."""
    if d.is_relative_to(Path.cwd()):
        d = d.relative_to(Path.cwd())  # messages name results/... as the user sees it
    state, detail, _ = seals.check_run(d, None)
    if state == "tampered":
        redo = seals.rerun_command(benchmark, system, run_id)
        return RunState(run_id, "tampered", f"{detail}; redo it: {redo}")
    try:
        r = ResultRecord.read(d / "result.json")
    except formats.CorruptFile as exc:  # NotAnObject too: "<path> is not a JSON object"
        state, detail = "corrupt_result", str(exc)
    if state == "corrupt_result":
        redo = "the next invocation re-parses its log (no training)"
        return RunState(run_id, "corrupt", f"{detail}; {redo}")
    conv = "converged" if r.converged else "NOT converged"
    unsealed = " (unsealed: from before sealing)" if state == "unsealed" else ""
    return RunState(
        run_id,
        "done",
        f"{conv}, {r.time_to_train_s} s, {r.epochs} epochs, seed {r.seed}" + unsealed,
    )


def remote_run_state(run_id: str, info: dict[str, Any], d: Path) -> RunState:
    """A run whose runner is on another host: ask Slurm about its job, if it has one."""
    host, job = info["host"], info.get("slurm_job_id")
    where = f"on {host}" + (f" in Slurm job {job}" if job else "")
    state = cluster.job_state(job) if job else None
    if state is None:
        return RunState(
            run_id,
            "running",
            f"{where} since {info['started_utc']} (not checked from here), log {d / 'mlperf.log'}",
        )
    if state in cluster.ACTIVE_JOB_STATES:
        return RunState(run_id, "running", f"{where} ({state}) since {info['started_utc']}")
    return RunState(
        run_id, "interrupted", f"its job {where} is {state}; the next invocation redoes it"
    )


def report(config: dict[str, Any], root: Path) -> str:
    out: list[str] = []
    for benchmark in config["campaign"]["benchmarks"]:
        for system in topology.benchmark_systems(config, benchmark):
            run_ids = topology.system_run_ids(config, benchmark, system)
            states = [run_state(root, benchmark, system, r) for r in run_ids]
            counts: dict[str, int] = {}
            for s in states:
                counts[s.state] = counts.get(s.state, 0) + 1
            summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
            out.append(f"{benchmark}/{system}: {len(run_ids)} runs: {summary}")
            out.extend(f"  run_{s.run_id}  {s.state:<11} {s.detail}".rstrip() for s in states)
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m scripts status",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--configfile",
        type=Path,
        action="append",
        default=[],
        help="a config overlay, as given to snakemake (repeatable)",
    )
    args = p.parse_args(argv)
    try:
        config = config_checks.load_campaign(args.configfile)
    except (ConfigError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        print(report(config, Path.cwd()))
    except formats.NewerFormat as exc:  # a campaign of a newer workflow: not read, not changed
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
