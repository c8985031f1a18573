"""A trivial trainer for the workflow's overhead benchmarks: prints a valid MLPerf log and exits.

Only the standard library (no mlperf-logging, no torch), so its own start-up is as small as a
Python process allows; the benchmarks run the same script in the workflow and in a shell loop.
"""

from __future__ import annotations

import itertools
import json
import sys
import time

# one millisecond apart: a log whose run_stop is at its run_start is not a valid MLPerf log,
# and this trainer is faster than the clock's millisecond
_TICKS = itertools.count(int(time.time() * 1000))


def event(key: str, value: object = None, **metadata: object) -> str:
    record = {
        "namespace": "",
        "time_ms": next(_TICKS),
        "event_type": "POINT_IN_TIME",
        "key": key,
        "value": value,
        "metadata": {"file": "trivial_trainer.py", "lineno": 0, **metadata},
    }
    return ":::MLLOG " + json.dumps(record)


def main(argv: list[str]) -> int:
    seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 0
    lines = [
        event("submission_benchmark", "trivial"),
        event("seed", seed),
        event("init_start"),
        event("init_stop"),
        event("run_start"),
        event("epoch_start", epoch_num=1),
        event("epoch_stop", epoch_num=1),
        event("eval_accuracy", 1.0, epoch_num=1),
        event("run_stop", status="success", epoch_num=1),
    ]
    print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
