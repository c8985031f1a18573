"""A fast, controllable stand-in for a trainer, used only by tests.

It writes a valid MLPerf log (``:::MLLOG`` lines through mlperf-logging) to stdout, like a real
trainer, in a fraction of a second. Options make it misbehave on purpose.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from mlperf_logging import mllog
from mlperf_logging.mllog import constants as C


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--run", type=int, required=True)
    p.add_argument("--target", type=float, default=0.9)
    p.add_argument("--epochs", type=int, default=0, help="epochs to converge (0: from the seed)")
    p.add_argument("--epoch-s", type=float, default=0.01, help="seconds per epoch")
    p.add_argument("--no-converge-runs", default="", help="comma list of runs that end aborted")
    p.add_argument("--crash-runs", default="", help="comma list of runs that exit 3")
    p.add_argument("--hang-runs", default="", help="comma list of runs that sleep forever")
    p.add_argument("--marker-dir", default="", help="touch <dir>/run_<N>.<pid> when started")
    args = p.parse_args(argv)
    runs = {
        k: {int(x) for x in getattr(args, k).split(",") if x}
        for k in ("no_converge_runs", "crash_runs", "hang_runs")
    }
    if args.marker_dir:
        os.makedirs(args.marker_dir, exist_ok=True)
        open(os.path.join(args.marker_dir, f"run_{args.run}.{os.getpid()}"), "w").close()
    log = mllog.get_mllogger()
    mllog.config(default_stack_offset=1)
    log.event(key=C.SUBMISSION_BENCHMARK, value="fake")
    log.event(key=C.SEED, value=args.seed)
    log.start(key=C.RUN_START)
    epochs = args.epochs or 2 + args.seed % 3
    converge = args.run not in runs["no_converge_runs"]
    for epoch in range(1, epochs + 1):
        log.start(key=C.EPOCH_START, metadata={C.EPOCH_NUM: epoch})
        time.sleep(args.epoch_s)
        if args.run in runs["crash_runs"]:
            print("fake trainer: crashing on purpose", file=sys.stderr, flush=True)
            return 3
        if args.run in runs["hang_runs"]:
            signal.pause()
        log.end(key=C.EPOCH_STOP, metadata={C.EPOCH_NUM: epoch})
        quality = args.target * (epoch / epochs if converge else 0.5)
        log.event(key=C.EVAL_ACCURACY, value=round(quality, 4), metadata={C.EPOCH_NUM: epoch})
    log.end(key=C.RUN_STOP, metadata={C.STATUS: C.SUCCESS if converge else C.ABORTED})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
