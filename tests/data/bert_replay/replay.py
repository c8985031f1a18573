"""Test stand-in of a BERT v5.0 trainer (see README.md): it replays one of NVIDIA's published
MLPerf Training v5.0 BERT logs, re-timed to now, with the run's seed.

``replay.py --logs DIR --seed SEED --run RUN`` prints the ``:::MLLOG`` lines of the log that run
RUN replays: the RUN-th of DIR's ``result_N.txt`` by N, wrapping around (with DIR's ten logs,
runs 11 and 12 replay the first two again), each event at its original distance from the
first divided by REPLAY_SPEEDUP (default 250: NVIDIA's 8-GPU runs of about 250 s take about
1 s), ``time_ms`` the time it is printed and the ``seed`` event's value SEED. The re-timing is
tests/data/v51_standin/train.py's ``replay``, loaded from that file (it lies beside this
folder, in the repository and in the copy a test makes). Standard library only.
"""

import argparse
import importlib.util
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
STANDIN = os.path.join(HERE, os.pardir, "v51_standin", "train.py")
DEFAULT_SPEEDUP = "250"


def standin():
    """tests/data/v51_standin/train.py as a module (its file name is no package's)."""
    spec = importlib.util.spec_from_file_location("v51_standin_train", STANDIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def log_of_run(logs, run):
    """The log that run ``run`` (1, 2, ...) replays: the run-th result_N.txt of ``logs`` by N,
    wrapping around."""
    found = {}
    for name in os.listdir(logs):
        match = re.fullmatch(r"result_(\d+)\.txt", name)
        if match:
            found[int(match.group(1))] = os.path.join(logs, name)
    if not found:
        raise SystemExit(f"bert replay: no result_N.txt in {logs}")
    ordered = [found[n] for n in sorted(found)]
    return ordered[(run - 1) % len(ordered)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--logs", required=True, help="a folder of published result_N.txt")
    p.add_argument("--seed", type=int, required=True, help="the run's seed ({seed})")
    p.add_argument("--run", type=int, required=True, help="the run's number ({run})")
    args = p.parse_args(argv)
    if args.run < 1:
        p.error(f"--run must be 1 or more, got {args.run}")
    log = log_of_run(args.logs, args.run)
    speedup = float(os.environ.get("REPLAY_SPEEDUP", DEFAULT_SPEEDUP))
    # not an MLLOG line: the compliance checker and the workflow's parser skip it
    print(f"bert replay: run {args.run} replays {log} at {speedup:g}x, seed {args.seed}")
    sys.stdout.flush()
    standin().replay(log, speedup, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
