"""Overhead per run: a campaign of trivial runs through the workflow against a shell loop.

    python bench/overhead_per_run.py            # 100 runs (goal: <= 0.25 s per run above the loop)
    python bench/overhead_per_run.py --quick    # 10 runs (CI)
    python bench/overhead_per_run.py --against 03872eb   # also the workflow at that commit

The trivial trainer (bench/trivial_trainer.py) prints a valid MLPerf log and exits. The loop runs
it the same number of times, each writing its log to a file. The workflow run is
`snakemake --cores 1 results/trivial/summary.csv` on a fresh copy: dataset, environment capture,
every run (runner, trainer, parse) and the tables. With ``--against REV`` a fresh copy of the
workflow at git revision REV runs the same campaign in the same process, alternating with this
commit's (``--repeat`` times each): the ratio compares the two in one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    archived_workflow,
    bytecode_note,
    commit,
    copy_workflow,
    shell,
    short_rev,
    snakemake,
    trivial_campaign,
)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--quick", action="store_true", help="10 runs")
    p.add_argument("--against", metavar="REV", help="also time the workflow at this git revision")
    p.add_argument("--repeat", type=int, default=1, help="campaigns per side with --against")
    args = p.parse_args()
    runs = 10 if args.quick else args.runs
    if args.against:
        return against(args.against, runs, args.repeat)
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        wf = copy_workflow(Path(tmp) / "wf")
        overlay = trivial_campaign(wf, systems=1, runs=runs)
        (wf / "loop").mkdir()
        loop_s = shell(
            f'for i in $(seq {runs}); do "{sys.executable}" trivial_trainer.py --seed $i '
            "> loop/run_$i.log; done",
            wf,
        )
        wf_s, _ = snakemake(
            wf, "--cores", "1", "results/trivial/summary.csv", "--configfile", str(overlay)
        )
        noop_s, _ = snakemake(
            wf, "--cores", "1", "results/trivial/summary.csv", "--configfile", str(overlay)
        )
    per_run = (wf_s - loop_s) / runs
    print(f"{runs} trivial runs, commit {commit()}")
    print(bytecode_note())
    print(f"{'what':<44}{'wall s':>10}{'s per run':>12}")
    print(f"{'shell loop (baseline)':<44}{loop_s:>10.2f}{loop_s / runs:>12.3f}")
    print(f"{'snakemake --cores 1 (fresh campaign)':<44}{wf_s:>10.2f}{wf_s / runs:>12.3f}")
    print(f"{'snakemake again (nothing to do)':<44}{noop_s:>10.2f}")
    print(
        f"overhead per run above the loop: {per_run:.3f} s (goal <= 0.25 s); "
        f"ratio workflow / loop: {wf_s / loop_s:.1f}x"
    )
    return 0


def against(rev: str, runs: int, repeat: int) -> int:
    """Fresh campaigns of this commit and of ``rev``, alternating; the ratio of the medians."""
    ours: list[float] = []
    theirs: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        for i in range(repeat):
            for side, times in (("new", ours), ("old", theirs)):
                dest = Path(tmp) / f"{side}{i}"
                wf = copy_workflow(dest) if side == "new" else archived_workflow(rev, dest)
                overlay = trivial_campaign(wf, systems=1, runs=runs)
                target = ("--cores", "1", "results/trivial/summary.csv", "--configfile")
                times.append(snakemake(wf, *target, str(overlay))[0])
    old = short_rev(rev)
    print(f"{runs} trivial runs, commit {commit()} against {old}, {repeat} campaign(s) each")
    print(bytecode_note())
    print(f"{'what':<44}{'median s':>10}{'s per run':>12}")
    for label, times in ((f"this commit ({commit()})", ours), (f"{old} (--against)", theirs)):
        median = statistics.median(times)
        print(f"{label:<44}{median:>10.2f}{median / runs:>12.3f}")
    print(
        f"overhead ratio this commit / {old}: "
        f"{statistics.median(ours) / statistics.median(theirs):.3f} (medians, same run)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
