"""The embedded trainer: time to target over 10 seeds on this machine, and the default campaign.

    python bench/trainer.py                # 10 seeds, then the default campaign (goals: median
                                           # <= 20 s; whole campaign <= 5 minutes)
    python bench/trainer.py --quick        # 2 seeds with a lower target, no campaign (CI)

Each seed is one `python -m scripts.gnmt.train` on the embedded corpus with the default
hyper-parameters and threads (config/benchmarks/gnmt.yaml, config/systems/local.yaml), one at a
time. Time to target is run_stop - run_start from its MLPerf log (what the score uses). The
campaign is `snakemake --cores 1 results/gnmt/summary.csv` on a fresh copy of the workflow.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, commit, copy_workflow, snakemake  # noqa: E402

from scripts.campaign import command, config_checks  # noqa: E402
from scripts.core import records  # noqa: E402
from scripts.data.unpack import safe_unpack
from scripts.mlperf.log_parser import parse_text
from scripts.mlperf.outcome import run_outcome


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    conf = config_checks.load_campaign()
    bench = conf["benchmarks"]["gnmt"]
    system = conf["systems"]["local"]
    target = 40.0 if args.quick else bench["quality"]["target"]
    seeds = [
        command.derive_seed("gnmt", r) for r in range(1, (2 if args.quick else args.seeds) + 1)
    ]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as tmp:
        data = Path(tmp) / "dataset"
        safe_unpack(REPO / "resources" / "toy-ende-v1.tar.gz", data)
        hp = shlex.join(command.hp_args(records.hyperparameters(conf, "gnmt", "local")))
        for seed in seeds:
            cmd = (
                f"{sys.executable} -m scripts.gnmt.train --data-dir {data}/toy-ende-v1 "
                f"--seed {seed} --target-bleu {target} --threads {system['threads']} {hp}"
            )
            t = time.perf_counter()
            out = subprocess.run(
                cmd, shell=True, cwd=REPO, capture_output=True, text=True, check=True
            ).stdout
            wall = time.perf_counter() - t
            outcome = run_outcome(parse_text(out), target)
            rows.append((seed, outcome.time_to_train_s, outcome.epochs, outcome.converged, wall))
        campaign_s = None
        if not args.quick:
            wf = copy_workflow(Path(tmp) / "wf")
            campaign_s, _ = snakemake(wf, "--cores", "1", "results/gnmt/summary.csv")
    print(f"embedded GNMT, target BLEU {target}, {system['threads']} threads, commit {commit()}")
    print(f"{'seed':>12}{'time to target s':>18}{'epochs':>8}{'converged':>11}{'process s':>11}")
    for seed, ttt, epochs, ok, wall in rows:
        print(f"{seed:>12}{ttt or float('nan'):>18.2f}{epochs or 0:>8}{str(ok):>11}{wall:>11.2f}")
    times = [r[1] for r in rows if r[1] is not None]
    print(
        f"median time to target: {statistics.median(times):.2f} s (goal <= 20 s); "
        f"{sum(r[3] for r in rows)}/{len(rows)} converged"
    )
    if campaign_s is not None:
        print(f"default campaign (10 runs, fresh copy): {campaign_s:.1f} s (goal <= 300 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
