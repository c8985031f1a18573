"""Overhead per run: a campaign of trivial runs through the workflow against a shell loop.

    python bench/overhead_per_run.py            # 100 runs (goal: <= 0.25 s per run above the loop)
    python bench/overhead_per_run.py --quick    # 10 runs (CI)

The trivial trainer (bench/trivial_trainer.py) prints a valid MLPerf log and exits. The loop runs
it the same number of times, each writing its log to a file. The workflow run is
`snakemake --cores 1 results/trivial/summary.csv` on a fresh copy: dataset, environment capture,
every run (runner, trainer, parse) and the tables.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import commit, copy_workflow, shell, snakemake, trivial_campaign  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--quick", action="store_true", help="10 runs")
    args = p.parse_args()
    runs = 10 if args.quick else args.runs
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
    print(f"{'what':<44}{'wall s':>10}{'s per run':>12}")
    print(f"{'shell loop (baseline)':<44}{loop_s:>10.2f}{loop_s / runs:>12.3f}")
    print(f"{'snakemake --cores 1 (fresh campaign)':<44}{wf_s:>10.2f}{wf_s / runs:>12.3f}")
    print(f"{'snakemake again (nothing to do)':<44}{noop_s:>10.2f}")
    print(
        f"overhead per run above the loop: {per_run:.3f} s (goal <= 0.25 s); "
        f"ratio workflow / loop: {wf_s / loop_s:.1f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
