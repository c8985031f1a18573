"""Scale: a dry run (`snakemake -n`) of ever larger campaigns, and how its time grows.

    python bench/dry_run_scale.py            # 100, 1,000 and 10,000 runs (goal: <= 10 s at 10,000)
    python bench/dry_run_scale.py --quick    # 100 and 400 runs (CI)

Campaign sizes are systems x runs: 10 x 10, 10 x 100, 100 x 100. Nothing exists yet, so the dry
run plans every job: dataset, environment per system, a train and a parse job per run, tables.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import commit, copy_workflow, snakemake, trivial_campaign  # noqa: E402

FULL = [(10, 10), (10, 100), (100, 100)]
QUICK = [(10, 10), (20, 20)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    sizes = QUICK if args.quick else FULL
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-dryrun-") as tmp:
        for systems, runs in sizes:
            wf = copy_workflow(Path(tmp) / f"wf{systems}x{runs}")
            overlay = trivial_campaign(wf, systems=systems, runs=runs)
            seconds, proc = snakemake(
                wf,
                "-n",
                "--cores",
                "1",
                "results/trivial/summary.csv",
                "--configfile",
                str(overlay),
            )
            jobs = _jobs(proc.stdout + proc.stderr)
            rows.append((systems * runs, jobs, seconds))
    print(f"dry run of a fresh campaign, commit {commit()}")
    print(f"{'runs':>8}{'jobs':>8}{'wall s':>10}{'ms per run':>12}")
    for n, jobs, seconds in rows:
        print(f"{n:>8}{jobs:>8}{seconds:>10.2f}{1000 * seconds / n:>12.2f}")
    (n0, _, s0), (n1, _, s1) = rows[0], rows[-1]
    print(
        f"growth from {n0} to {n1} runs: {s1 / s0:.1f}x time for {n1 / n0:.0f}x runs "
        f"(goal: <= 10 s at 10,000 runs)"
    )
    return 0


def _jobs(output: str) -> int:
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "total" and parts[1].isdigit():
            return int(parts[1])
    return -1


if __name__ == "__main__":
    raise SystemExit(main())
