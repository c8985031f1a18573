"""Scale: a dry run (`snakemake -n`) of ever larger campaigns, and how its time grows.

    python bench/dry_run_scale.py            # 100, 1,000 and 10,000 runs (goal: <= 10 s at 10,000)
    python bench/dry_run_scale.py --quick    # 100 and 400 runs (CI)
    python bench/dry_run_scale.py --against 4e6fe23 --repeat 3   # + that commit, largest size
    python bench/dry_run_scale.py --against 4e6fe23 --print-jobs # the same with -n, not -n -q
    python bench/dry_run_scale.py --against 4e6fe23 --instructions  # instructions, not seconds

With ``--against REV`` the largest campaign is also planned by the workflow at git revision REV
and by the floor, alternating ``--repeat`` times, all with ``-n -q`` (with ``--print-jobs``: all
with ``-n``, which prints every job): the medians' ratios (this commit / REV, this commit /
floor) compare the code in one run on a noisy machine.

With ``--instructions`` (and ``--against``) each of the three is run once under Valgrind's
callgrind, which counts the instructions the process executes: the same count on a loaded or
a quiet machine, so its ratios hold where seconds vary by a third from one run to the next. It
takes about 100 times as long (``--size``: the campaign, default 10x100 = 1,000 runs). It
counts no cache miss or page fault, so it is a check of the code's own work, not of the time.

Campaign sizes are systems x runs: 10 x 10, 10 x 100, 100 x 100. Nothing exists yet, so the dry
run plans every job: dataset, environment per system, one job per run, tables. Baseline, in the
same run: Snakemake's own floor, a minimal Snakefile with one rule and the same number of jobs
(one per run, same outputs), both with `-n` and with `-n -q` (no per-job printing).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    archived_workflow,
    bench_env,
    bytecode_note,
    commit,
    copy_workflow,
    short_rev,
    snakemake,
    trivial_campaign,
)

FULL = [(10, 10), (10, 100), (100, 100)]
QUICK = [(10, 10), (20, 20)]


FLOOR = """\
rule all:
    input: "summary.csv"
rule summarize:
    input:
        expand("results/s{{s:03d}}/run_{{r:02d}}/result.json",
               s=range({systems}), r=range(1, {runs} + 1))
    output: "summary.csv"
    shell: "touch {{output}}"
rule train:
    input: "dataset.txt"
    output:
        "results/s{{s}}/run_{{r}}/mlperf.log",
        "results/s{{s}}/run_{{r}}/run.json",
        "results/s{{s}}/run_{{r}}/result.json",
    shell: "touch {{output}}"
"""


def floor_dir(tmp: Path, systems: int, runs: int) -> Path:
    """The floor's workflow for ``systems`` x ``runs`` jobs (made once, then reused)."""
    d = tmp / f"floor{systems}x{runs}"
    d.mkdir(exist_ok=True)
    (d / "Snakefile").write_text(FLOOR.format(systems=systems, runs=runs))
    (d / "dataset.txt").write_text("x\n")
    return d


def floor(tmp: Path, systems: int, runs: int, *flags: str) -> float:
    return snakemake(floor_dir(tmp, systems, runs), "-n", *flags, "--cores", "1")[0]


def campaign_args(overlay: str) -> list[str]:
    """The dry run's target in a workflow with the trivial campaign ``overlay``."""
    return ["--cores", "1", "results/trivial/summary.csv", "--configfile", overlay]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument(
        "--against", metavar="REV", help="also plan the largest campaign at this revision"
    )
    p.add_argument("--repeat", type=int, default=3, help="alternations with --against")
    p.add_argument(
        "--print-jobs",
        action="store_true",
        help="with --against: time -n (every job printed) instead of -n -q",
    )
    p.add_argument(
        "--instructions",
        action="store_true",
        help="with --against: count instructions (valgrind --tool=callgrind), once each",
    )
    p.add_argument(
        "--size",
        default="10x100",
        metavar="SYSTEMSxRUNS",
        help="the campaign of --instructions (default 10x100)",
    )
    args = p.parse_args()
    if args.instructions:
        if not args.against:
            p.error("--instructions needs --against REV")
        systems, _, runs = args.size.partition("x")
        flags = ("-n",) if args.print_jobs else ("-n", "-q")
        return instructions(args.against, (int(systems), int(runs)), flags)
    if args.against:
        flags = ("-n",) if args.print_jobs else ("-n", "-q")
        return against(args.against, (QUICK if args.quick else FULL)[-1], args.repeat, flags)
    sizes = QUICK if args.quick else FULL
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-dryrun-") as tmp:
        for systems, runs in sizes:
            wf = copy_workflow(Path(tmp) / f"wf{systems}x{runs}")
            overlay = str(trivial_campaign(wf, systems=systems, runs=runs))
            args = campaign_args(overlay)
            seconds, proc = snakemake(wf, "-n", *args)
            quiet, _ = snakemake(wf, "-n", "-q", *args)
            jobs = _jobs(proc.stdout + proc.stderr)
            base = floor(Path(tmp), systems, runs)
            base_q = floor(Path(tmp), systems, runs, "-q")
            rows.append((systems * runs, jobs, seconds, quiet, base, base_q))
    print(f"dry run of a fresh campaign, commit {commit()}")
    print(bytecode_note())
    print(
        f"{'runs':>8}{'jobs':>8}{'-n s':>9}{'-n -q s':>9}{'floor -n':>10}{'floor -q':>10}"
        f"{'ms/run':>8}"
    )
    for n, jobs, seconds, quiet, base, base_q in rows:
        print(
            f"{n:>8}{jobs:>8}{seconds:>9.2f}{quiet:>9.2f}{base:>10.2f}{base_q:>10.2f}"
            f"{1000 * seconds / n:>8.2f}"
        )
    (n0, _, s0, *_), (n1, _, s1, q1, b1, bq1) = rows[0], rows[-1]
    print(
        f"growth from {n0} to {n1} runs: {s1 / s0:.1f}x time for {n1 / n0:.0f}x runs "
        f"(goal: <= 10 s at 10,000 runs)"
    )
    print(
        f"at {n1} runs: -n {s1:.2f} s = {s1 / b1:.2f}x Snakemake's floor ({b1:.2f} s); "
        f"-n -q {q1:.2f} s = {q1 / bq1:.2f}x its floor ({bq1:.2f} s)"
    )
    return 0


def against(rev: str, size: tuple[int, int], repeat: int, flags: tuple[str, ...]) -> int:
    """``flags`` (-n or -n -q) of the largest campaign: this commit, REV, floor, alternating."""
    systems, runs = size
    times: dict[str, list[float]] = {"this": [], "old": [], "floor": []}
    with tempfile.TemporaryDirectory(prefix="bench-dryrun-") as tmp:
        new = copy_workflow(Path(tmp) / "new")
        old = archived_workflow(rev, Path(tmp) / "old")
        trees = {"this": new, "old": old}
        overlays = {
            k: str(trivial_campaign(wf, systems=systems, runs=runs)) for k, wf in trees.items()
        }
        for _ in range(repeat):
            for key, wf in trees.items():
                seconds, proc = snakemake(wf, *flags, *campaign_args(overlays[key]))
                if proc.returncode != 0:
                    raise SystemExit(f"{key}: snakemake failed:\n{proc.stderr[-2000:]}")
                times[key].append(seconds)
            times["floor"].append(floor(Path(tmp), systems, runs, *flags[1:]))
    med = {k: statistics.median(v) for k, v in times.items()}
    how = " ".join(flags)
    print(f"dry run ({how}) of {systems * runs} runs, commit {commit()} against {short_rev(rev)}")
    print(bytecode_note())
    for key, label in (("this", "this commit"), ("old", short_rev(rev)), ("floor", "floor")):
        print(
            f"{label:>14}: median {med[key]:7.2f} s  ({', '.join(f'{t:.2f}' for t in times[key])})"
        )
    print(
        f"this / {short_rev(rev)}: {med['this'] / med['old']:.3f}; this / floor: "
        f"{med['this'] / med['floor']:.2f}x; {short_rev(rev)} / floor: "
        f"{med['old'] / med['floor']:.2f}x (goal: <= 1.5x the floor)"
    )
    return 0


def instructions(rev: str, size: tuple[int, int], flags: tuple[str, ...]) -> int:
    """``flags`` of a campaign of ``size``: this commit, REV and the floor, each once under
    callgrind (two at a time), and the ratios of the instructions they executed."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (Debian: apt-get install valgrind)")
    systems, runs = size
    with tempfile.TemporaryDirectory(prefix="bench-dryrun-") as tmp:
        new = copy_workflow(Path(tmp) / "new")
        old = archived_workflow(rev, Path(tmp) / "old")
        jobs = {}
        for key, wf in (("this", new), ("old", old)):
            overlay = str(trivial_campaign(wf, systems=systems, runs=runs))
            jobs[key] = (wf, [*flags, *campaign_args(overlay)])
        jobs["floor"] = (floor_dir(Path(tmp), systems, runs), [*flags, "--cores", "1"])
        for wf, args in jobs.values():  # once without valgrind: bytecode, as timed runs
            snakemake(wf, *args)
        with ThreadPoolExecutor(max_workers=2) as pool:
            counts = dict(
                zip(jobs, pool.map(lambda job: _callgrind(*job), jobs.values()), strict=True)
            )
    how = " ".join(flags)
    print(
        f"instructions of a dry run ({how}) of {systems * runs} runs, commit {commit()} "
        f"against {short_rev(rev)} (valgrind --tool=callgrind)"
    )
    for key, label in (("this", "this commit"), ("old", short_rev(rev)), ("floor", "floor")):
        print(f"{label:>14}: {counts[key] / 1e6:12,.0f} M")
    print(
        f"this / {short_rev(rev)}: {counts['this'] / counts['old']:.3f}; this / floor: "
        f"{counts['this'] / counts['floor']:.3f}x; {short_rev(rev)} / floor: "
        f"{counts['old'] / counts['floor']:.3f}x"
    )
    return 0


def _callgrind(wf: Path, args: list[str]) -> int:
    """Instructions that ``snakemake args`` executes in ``wf`` (the process, not its children:
    a dry run starts none)."""
    proc = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-m",
            "snakemake",
            *args,
        ],
        cwd=wf,
        capture_output=True,
        text=True,
        env=bench_env(),
    )
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode != 0 or found is None:
        raise SystemExit(f"callgrind of snakemake in {wf} failed:\n{proc.stderr[-2000:]}")
    return int(found.group(1))


def _jobs(output: str) -> int:
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "total" and parts[1].isdigit():
            return int(parts[1])
    return -1


if __name__ == "__main__":
    raise SystemExit(main())
