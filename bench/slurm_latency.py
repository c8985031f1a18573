"""Slurm latency: how long a finished run's job waits to be seen, and the next run to start.

    python bench/slurm_latency.py            # 5 runs, --jobs 1 and queued, baseline 10 s vs profile
    python bench/slurm_latency.py --quick    # 3 runs, --jobs 1, the profile's setting
    python bench/slurm_latency.py --quick --runs 2    # the same with 2 runs (CI's test)
    python bench/slurm_latency.py --init-seconds 10 5 2 --runs 6

Needs a running Slurm (.ci/slurm-up.sh); without one it says so and exits 0 (skipped).

A campaign of fake runs (tests/fake_trainer.py: run N trains 2-4 epochs of N s, so the jobs end
at different points of the poll schedule; --quick: 1-2 s each) goes through profiles/slurm,
one Slurm job per run, on a fresh copy of the workflow per case. `squeue` is a counting wrapper
first on PATH (for snakemake only): it records the time and output of every call, so we know
which call first reported a job COMPLETED, and how many calls were made. Per run:

- the job's end: the last write to the job's own output file (logs/slurm/.../<jobid>.log; its
  last line is the job's snakemake saying "Finished jobid"). The run's outputs are no measure:
  snakemake touches them when it has seen the job finish.
- seen: the end of the first `squeue` call of the executor that reported the job finished (the
  executor acts on that output at once; Snakemake's "Finished jobid" line follows within 1 s)
- (a) seen latency = seen - the job's end
- (b) gap = the next run's run_start - this run's run_stop (MLPerf log times): time the node
  trained nothing. With --jobs 1 Snakemake submits the next run only after it saw this one
  finish; queued (the profile's jobs: 100) all runs wait in Slurm, which starts the next itself.
- job start: Slurm's StartTime (whole seconds) -> run_start, and job end: run_stop -> the job's
  end: what the job itself spends around the trainer (its snakemake, srun, the runner).

The executor (snakemake-executor-plugin-slurm 2.8.0) polls `--slurm-init-seconds-before-status-
checks` (I) after the start, adds 10 s after every poll that found no job finished (at most
180 s) and goes back to I when one has finished. The table at the end is that schedule, for a
job lasting T: its worst-case and mean seen latency (mean over jobs of T/2 to 3T/2) and the
squeue calls per minute while it runs.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, commit  # noqa: E402

from tests.conftest import copy_workflow, fake_campaign  # noqa: E402

BASELINE_INIT_S = 10  # profiles/slurm before tuning (main at 1f547fb)
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}
PLUGIN_MAX_S = 180  # the executor's cap on the interval between polls
PLUGIN_STEP_S = 10  # what it adds after each poll that found nothing finished

WRAPPER = """#!/bin/sh
# {name}, counted: appends '@ start end rc name job args' and the output to $SLURM_CALL_LOG
# (job: the Slurm job the caller runs in, '-' for the snakemake that submits)
t0=$(date +%s.%N)
out=$("{real}" "$@")
rc=$?
t1=$(date +%s.%N)
printf '%s\\n' "$out"
printf '@ %s %s %s {name} %s %s\\n%s\\n' "$t0" "$t1" "$rc" "${{SLURM_JOB_ID:--}}" "$*" "$out" \\
    >>"$SLURM_CALL_LOG"
exit $rc
"""


def slurm_problem() -> str | None:
    """Why no Slurm can be used here, or None when its default partition has a usable node."""
    if shutil.which("sinfo") is None or shutil.which("squeue") is None:
        return "Slurm's client commands are not installed"
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 20 s"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        return f"sinfo failed: {last}"
    if not {s.rstrip("*") for s in proc.stdout.split()} & {"idle", "mixed", "allocated"}:
        return f"no usable node (sinfo: {' '.join(proc.stdout.split())})"
    return None


def profile_init_seconds() -> int:
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    return int(profile.get("slurm-init-seconds-before-status-checks", 40))


@dataclass
class Call:
    start: float
    end: float
    command: str  # squeue or scontrol
    job: str  # the Slurm job of the caller, "-" outside a job
    args: str
    states: dict[str, str]  # slurm job id -> state (squeue)


def read_calls(path: Path) -> list[Call]:
    calls: list[Call] = []
    if not path.exists():
        return calls
    for line in path.read_text().splitlines():
        if line.startswith("@ "):
            _, t0, t1, _rc, command, job, *args = line.split(" ")
            calls.append(Call(float(t0), float(t1), command, job, " ".join(args), {}))
        elif calls and calls[-1].command == "squeue" and "|" in line:
            job, state = line.split("|", 1)
            calls[-1].states[job.strip()] = state.strip()
    return calls


def mllog_times(path: Path) -> tuple[float, float]:
    """(run_start, run_stop) in epoch seconds from an MLPerf log."""
    times = {}
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith(":::MLLOG "):
            try:
                event = json.loads(line[len(":::MLLOG ") :])
            except json.JSONDecodeError:
                continue
            if event.get("key") in ("run_start", "run_stop"):
                times[event["key"]] = event["time_ms"] / 1000
    return times["run_start"], times["run_stop"]


def slurm_times(job: str) -> tuple[float, float] | None:
    """Slurm's StartTime and EndTime of a job (whole seconds), while squeue still knows it
    (for MinJobAge after its end)."""
    out = subprocess.run(
        ["squeue", "-h", "-t", "all", "-j", job, "-o", "%S|%e"],
        capture_output=True,
        text=True,
        timeout=20,
    ).stdout.strip()
    try:
        start, end = (time.mktime(time.strptime(t, "%Y-%m-%dT%H:%M:%S")) for t in out.split("|"))
    except ValueError:
        return None
    return start, end


def sdiag_job_info() -> int | None:
    """slurmctld's count of REQUEST_JOB_INFO RPCs (squeue's), or None without sdiag."""
    try:
        out = subprocess.run(["sdiag"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"^\s*REQUEST_JOB_INFO\s+\(\s*\d+\) count:(\d+)", out, re.M)
    return int(m.group(1)) if m else 0


@dataclass
class Case:
    init_s: int
    jobs: int | None  # None: the profile's
    seen: list[float]  # (a) per run: job's end -> the executor saw it
    before: list[float]  # Slurm StartTime -> run_start (the job's start, inside the job)
    after: list[float]  # run_stop -> the job's end (its last write)
    gaps: list[float]  # (b) per consecutive pair: run_stop -> the next run's run_start
    calls: int  # the executor's squeue calls
    configs: int  # its `scontrol show config` calls (it re-reads MinJobAge at every check)
    job_configs: int  # those of the jobs' own snakemakes (at their start)
    rpcs: int | None  # slurmctld REQUEST_JOB_INFO during the invocation
    wall_s: float
    run_s: list[float]  # run_start -> run_stop
    intervals: list[float]  # between the starts of consecutive squeue calls of the executor

    @property
    def per_min(self) -> float:
        return self.calls / (self.wall_s / 60)


def run_case(tmp: Path, runs: int, init_s: int, jobs: int | None, epoch_s: float | None) -> Case:
    wf = copy_workflow(tmp / f"wf-{init_s}-{jobs or 'q'}")
    # the trainer runs 2-4 epochs of epoch_s, or (None) run N's epochs last N s: the jobs then
    # end at different points of the executor's poll schedule
    longest = epoch_s if epoch_s is not None else runs
    bench = fake_campaign(
        wf,
        runs=runs,
        faults={} if epoch_s is None else {"epoch_s": epoch_s},
        timeout_s=60 + 8 * longest,
    )
    if epoch_s is None:
        overlay = yaml.safe_load(bench.read_text())
        overlay["benchmarks"]["fake"]["implementation"]["command"] += " --epoch-s {run}"
        bench.write_text(yaml.safe_dump(overlay))
    system = wf / "slurm-bench.yaml"
    # only the runs are Slurm jobs; exclusive (the default): one run at a time on the node
    system.write_text(yaml.safe_dump({"cluster_rules": ["train_run"]}))
    bin_dir = wf / "bench-bin"
    bin_dir.mkdir()
    for name in ("squeue", "scontrol"):
        wrapper = bin_dir / name
        wrapper.write_text(WRAPPER.format(name=name, real=shutil.which(name)))
        wrapper.chmod(0o755)
    call_log = wf / "slurm-calls.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["SLURM_CALL_LOG"] = str(call_log)
    cmd = [sys.executable, "-m", "snakemake", "results/fake/summary.csv"]
    cmd += ["--profile", "profiles/slurm", "--configfile", str(bench), str(system)]
    cmd += ["--slurm-init-seconds-before-status-checks", str(init_s)]
    if jobs is not None:
        cmd += ["--jobs", str(jobs)]
    rpcs_before = sdiag_job_info()
    t = time.monotonic()
    proc = subprocess.run(cmd, cwd=wf, capture_output=True, text=True, env=env, timeout=1800)
    wall_s = time.monotonic() - t
    rpcs_after = sdiag_job_info()
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake failed ({' '.join(cmd)}):\n{proc.stderr[-4000:]}")
    submitted = dict(
        (m.group(2), m.group(1))
        for m in re.finditer(
            r"submitted with SLURM jobid (\d+) \(log: \S+/rule_train_run/fake_local_(\d+)/",
            proc.stderr,
        )
    )
    if len(submitted) != runs:
        raise RuntimeError(f"expected {runs} Slurm jobs, the executor reported {submitted}")
    every = read_calls(call_log)
    calls = [c for c in every if c.command == "squeue" and c.job == "-" and "--name" in c.args]
    configs = [c for c in every if c.command == "scontrol" and c.args.startswith("show config")]
    login_configs = sum(c.job == "-" for c in configs)
    timeline = []
    seen, before, after = [], [], []
    for run, job in sorted(submitted.items()):
        run_dir = wf / f"results/fake/local/run_{run}"
        start, stop = mllog_times(run_dir / "mlperf.log")
        # the job's own output file: its last line is written by the job as it ends (the
        # run's outputs are no measure: snakemake touches them when it has seen the job)
        job_end = (wf / f"logs/slurm/rule_train_run/fake_local_{run}/{job}.log").stat().st_mtime
        sighting = next(c.end for c in calls if c.states.get(job) in FINAL)
        seen.append(sighting - job_end)
        after.append(job_end - stop)
        times = slurm_times(job)
        if times is not None:
            before.append(start - times[0])
        timeline.append((start, stop))
    timeline.sort()
    gaps = [nxt[0] - prev[1] for prev, nxt in zip(timeline, timeline[1:], strict=False)]
    rpcs = None if rpcs_before is None or rpcs_after is None else rpcs_after - rpcs_before
    run_s = [b - a for a, b in timeline]
    intervals = [b.start - a.start for a, b in zip(calls, calls[1:], strict=False)]
    return Case(
        init_s,
        jobs,
        seen,
        before,
        after,
        gaps,
        len(calls),
        login_configs,
        len(configs) - login_configs,
        rpcs,
        wall_s,
        run_s,
        intervals,
    )


def worst_seen(init_s: int, run_s: float) -> float:
    """The executor's schedule: the longest wait, after a run of run_s seconds (submitted
    right after a poll), until the poll that sees it: the length of the interval it ends in."""
    t, interval = 0.0, init_s
    while t + interval < run_s:
        t += interval
        interval = min(interval + PLUGIN_STEP_S, PLUGIN_MAX_S)
    return interval


def mean_seen(init_s: int, run_s: float, samples: int = 1000) -> float:
    """The executor's schedule: the mean wait until the poll that sees a job, over jobs lasting
    run_s/2 to 3 run_s/2 (submitted right after a poll)."""
    polls, t, interval = [], 0.0, init_s
    while t < 2 * run_s + PLUGIN_MAX_S:
        t += interval
        polls.append(t)
        interval = min(interval + PLUGIN_STEP_S, PLUGIN_MAX_S)
    waits = []
    for k in range(samples):
        end = run_s * (0.5 + (k + 0.5) / samples)
        waits.append(polls[bisect.bisect_left(polls, end)] - end)
    return statistics.mean(waits)


def polls_per_min(init_s: int, run_s: float) -> float:
    """squeue calls per minute while one run of run_s seconds is running."""
    t, interval, n = 0.0, init_s, 0
    while t < run_s:
        t += interval
        n += 1
        interval = min(interval + PLUGIN_STEP_S, PLUGIN_MAX_S)
    return n / (t / 60)


def fmt(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):4.1f} / {max(values):4.1f}"


def print_schedule(inits: list[int]) -> None:
    print(
        "the executor's schedule (2.8.0), for a job of T: worst-case / mean seen latency (s), "
        "squeue calls a minute"
    )
    lengths = [10, 60, 600, 5400]
    print(f"{'I s':>4} " + " ".join(f"{f'T={t}s':>22}" for t in lengths))
    for init_s in inits:
        cells = [
            f"{worst_seen(init_s, t):3.0f} / {mean_seen(init_s, t):3.0f} "
            f"{polls_per_min(init_s, t):5.2f}/min"
            for t in lengths
        ]
        print(f"{init_s:>4} " + " ".join(f"{c:>22}" for c in cells))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, help="runs per case (default: 5; --quick: 3)")
    p.add_argument(
        "--init-seconds",
        type=int,
        nargs="+",
        help=f"values of I to compare (default: {BASELINE_INIT_S}, the profile before tuning, "
        "and the profile's)",
    )
    p.add_argument(
        "--epoch-s",
        type=float,
        help="the fake trainer's seconds per epoch (2-4 epochs; --quick: 0.5); default: run N's "
        "epochs last N s, so the runs end at different points of the poll schedule",
    )
    p.add_argument(
        "--mode",
        choices=("both", "one", "queued"),
        default="both",
        help="one: --jobs 1 (snakemake submits each run after seeing the last); queued: the "
        "profile's jobs (all runs wait in Slurm); both (default)",
    )
    p.add_argument("--quick", action="store_true", help="3 runs, --jobs 1, the profile's I")
    p.add_argument(
        "--schedule",
        action="store_true",
        help="only print the executor's schedule for the --init-seconds values (no Slurm needed)",
    )
    args = p.parse_args()
    if args.schedule:
        print_schedule(args.init_seconds or [BASELINE_INIT_S, profile_init_seconds(), 40])
        return 0
    problem = slurm_problem()
    if problem is not None:
        print(f"slurm_latency: skipped: no Slurm here ({problem}); start one: .ci/slurm-up.sh")
        return 0
    profile_s = profile_init_seconds()
    runs = args.runs if args.runs is not None else (3 if args.quick else 5)
    inits = args.init_seconds or ([profile_s] if args.quick else [BASELINE_INIT_S, profile_s])
    inits = list(dict.fromkeys(inits))
    mode = "one" if args.quick else args.mode
    modes: list[int | None] = {"one": [1], "queued": [None], "both": [1, None]}[mode]
    cases = []
    with tempfile.TemporaryDirectory(prefix="bench-slurm-latency-") as tmp:
        for init_s in inits:
            for jobs in modes:
                epoch_s = 0.5 if args.quick and args.epoch_s is None else args.epoch_s
                cases.append(run_case(Path(tmp), runs, init_s, jobs, epoch_s))
    runs_s = [s for c in cases for s in c.run_s]
    print(
        f"Slurm latency: {runs} fake runs per case ({min(runs_s):.1f}-{max(runs_s):.1f} s each), "
        f"commit {commit()}; profile I = {profile_s} s, baseline I = {BASELINE_INIT_S} s"
    )
    print(
        "median / max seconds; I = --slurm-init-seconds-before-status-checks; squeue/min and "
        "config/min: the submitting snakemake's squeue and `scontrol show config` calls a minute; "
        "RPCs: slurmctld's REQUEST_JOB_INFO count (sdiag) during the invocation"
    )
    head = f"{'I s':>4} {'jobs':>7} {'(a) seen':>13} {'(b) gap':>13} {'job start':>13}"
    print(f"{head} {'job end':>13} {'squeue/min':>10} {'config/min':>10} {'RPCs':>5} {'wall s':>7}")
    for c in cases:
        jobs = "1" if c.jobs == 1 else "queued"
        print(
            f"{c.init_s:>4} {jobs:>7} {fmt(c.seen):>13} {fmt(c.gaps):>13} {fmt(c.before):>13} "
            f"{fmt(c.after):>13} {c.per_min:>10.1f} {c.configs / (c.wall_s / 60):>10.1f} "
            f"{c.rpcs if c.rpcs is not None else '-':>5} {c.wall_s:>7.1f}"
        )
    for c in cases:
        print(
            f"I={c.init_s} jobs={'1' if c.jobs == 1 else 'queued'}: seen latency median "
            f"{statistics.median(c.seen):.1f} s max {max(c.seen):.1f} s; gap median "
            f"{statistics.median(c.gaps):.1f} s max {max(c.gaps):.1f} s; "
            f"{c.per_min:.1f} squeue calls/min; {c.configs} + {c.job_configs} in jobs "
            "`scontrol show config`; intervals between its squeue calls (s): "
            + " ".join(f"{i:.1f}" for i in c.intervals)
        )
    print()
    print_schedule(sorted({*inits, 40}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
