"""No-op: the main command on a finished campaign of 10 systems x 10 runs.

    python bench/noop.py            # 10 systems x 10 runs, 5 no-op invocations (goal: <= 2 s)
    python bench/noop.py --quick    # 2 systems x 3 runs, 2 invocations (CI)
    python bench/noop.py --against 03872eb   # also the workflow at that commit, alternating

The campaign (trivial trainer) is run once for real, then `snakemake --cores 1
results/trivial/summary.csv` is timed again and again: it must check every run (locks,
comparability, stale files), build the plan and say "Nothing to be done". Baseline: the same
snakemake on a one-rule Snakefile with nothing to do, in the same folder, alternating.
With ``--against REV`` the same finished campaign is also made by the workflow at git revision
REV, and its no-op joins the alternation: the ratio of the two medians compares the code
itself, measured in one run on the same (noisy) machine.
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
    short_rev,
    snakemake,
    trivial_campaign,
)

BARE = 'rule all:\n    input: "bare.txt"\n'


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--against", metavar="REV", help="also time the workflow at this git revision")
    args = p.parse_args()
    systems, runs, repeat = (2, 3, 2) if args.quick else (10, 10, 5)
    with tempfile.TemporaryDirectory(prefix="bench-noop-") as tmp:
        wf = copy_workflow(Path(tmp) / "wf")
        overlay = str(trivial_campaign(wf, systems=systems, runs=runs))
        target = ["--cores", "1", "results/trivial/summary.csv", "--configfile", overlay]
        first_s, _ = snakemake(wf, *target)
        old = None
        if args.against:
            old = archived_workflow(args.against, Path(tmp) / "old")
            old_target = [*target[:-1], str(trivial_campaign(old, systems=systems, runs=runs))]
            snakemake(old, *old_target)
        bare = Path(tmp) / "bare"
        bare.mkdir()
        (bare / "Snakefile").write_text(BARE)
        (bare / "bare.txt").write_text("done\n")
        ours: list[float] = []
        base: list[float] = []
        theirs: list[float] = []
        for _ in range(repeat):
            seconds, proc = snakemake(wf, *target)
            assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stderr
            ours.append(seconds)
            base.append(snakemake(bare, "--cores", "1")[0])
            if old is not None:
                seconds, proc = snakemake(old, *old_target)
                assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stderr
                theirs.append(seconds)
    print(f"finished campaign of {systems} systems x {runs} runs, commit {commit()}")
    print(bytecode_note())
    print(f"{'invocation':<52}{'median s':>10}{'min s':>8}")
    print(
        f"{'snakemake on a one-rule Snakefile (baseline)':<52}"
        f"{statistics.median(base):>10.2f}{min(base):>8.2f}"
    )
    print(
        f"{'the main command, nothing to do':<52}{statistics.median(ours):>10.2f}{min(ours):>8.2f}"
    )
    if theirs:
        label = f"the same at {short_rev(args.against)} (--against)"
        print(f"{label:<52}{statistics.median(theirs):>10.2f}{min(theirs):>8.2f}")
    print(f"(the campaign itself took {first_s:.1f} s)")
    if theirs:
        print(
            f"no-op ratio this commit / {short_rev(args.against)}: "
            f"{statistics.median(ours) / statistics.median(theirs):.3f} (medians, same run)"
        )
    print(
        f"no-op: {statistics.median(ours):.2f} s (goal <= 2 s), "
        f"{statistics.median(ours) - statistics.median(base):.2f} s above bare snakemake"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
