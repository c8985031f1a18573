"""A chatty trainer for bench/perturbation.py: a valid MLPerf log around a fixed number of plain
log lines written at a paced rate (default 50,000 lines per second), as a framework that prints
every step would.

    python bench/chatty_trainer.py --seed 1 --lines 500000 --rate 50000

Time to train (run_stop - run_start) is how long the lines took to write: at the paced rate when
the output keeps up, longer when whatever reads it (a file, a pipe, the runner) holds it back.
Only the standard library, like bench/trivial_trainer.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

BATCH = 500  # lines per write: the pace is kept per batch


def event(key: str, value: object = None, **metadata: object) -> str:
    record = {
        "namespace": "",
        "time_ms": int(time.time() * 1000),
        "event_type": "POINT_IN_TIME",
        "key": key,
        "value": value,
        "metadata": {"file": "chatty_trainer.py", "lineno": 0, **metadata},
    }
    return ":::MLLOG " + json.dumps(record) + "\n"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lines", type=int, default=500_000)
    p.add_argument("--rate", type=float, default=50_000.0, help="lines per second")
    args = p.parse_args(argv)
    out = sys.stdout
    out.write(event("submission_benchmark", "chatty") + event("seed", args.seed))
    out.write(event("init_start") + event("init_stop"))
    time.sleep(0.002)  # run_start strictly after init_stop, whatever the clock's resolution
    out.write(event("run_start") + event("epoch_start", epoch_num=1))
    out.flush()
    start = time.perf_counter()
    line = "step {:>9} loss 2.718281 lr 0.001000 tokens/s 123456.7 (chatty on purpose)\n"
    for first in range(0, args.lines, BATCH):
        out.write("".join(line.format(i) for i in range(first, min(first + BATCH, args.lines))))
        ahead = (first + BATCH) / args.rate - (time.perf_counter() - start)
        if ahead > 0:
            time.sleep(ahead)
    out.write(event("epoch_stop", epoch_num=1) + event("eval_accuracy", 1.0, epoch_num=1))
    time.sleep(0.002)
    out.write(event("run_stop", status="success", epoch_num=1))
    out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
