"""Test stand-in of an MLPerf v5.x trainer (see README.md): it replays one of the
implementation's own published logs, re-timed to now.

Every ``:::MLLOG`` line of ``replay.txt`` (next to this file; REPLAY_LOG names another) is
printed at its original distance from the first, divided by REPLAY_SPEEDUP (default 500),
with ``time_ms`` the time it is printed and the ``seed`` event's value replaced by $SEED when
given; with ``--skip-eval`` (what NVIDIA's run_and_time.sh adds for USE_SYNTHETIC_DATA=1) the
``eval_*`` events are left out. Only rank 0 prints the log (RANK, else SLURM_PROCID); every
rank first prints one line of what it got and checks that ``--dataset-path`` (when given) is a
folder it can read. Standard library only, Python 3.6+.
"""

import json
import os
import sys
import time

PREFIX = ":::MLLOG "


def arg(name):
    argv = sys.argv[1:]
    return argv[argv.index(name) + 1] if name in argv[:-1] else None


def main():
    rank = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))
    world = os.environ.get("WORLD_SIZE", os.environ.get("SLURM_NTASKS", "1"))
    seen = " ".join(
        "{}={}".format(k, os.environ.get(k, "-"))
        for k in (
            "DGXSYSTEM",
            "DGXNNODES",
            "DGXNGPU",
            "BATCHSIZE",
            "LR",
            "SEED",
            "LOCAL_RANK",
            "DATESTAMP",
        )
    )
    print(f"stand-in train.py: rank {rank} of {world}: {seen} args {sys.argv[1:]}")
    sys.stdout.flush()
    data = arg("--dataset-path")
    if data is not None and not (os.path.isdir(data) and os.access(data, os.R_OK)):
        print(f"stand-in train.py: no readable dataset at {data}", file=sys.stderr)
        return 2
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.environ.get("REPLAY_LOG", os.path.join(here, "replay.txt"))
    speedup = float(os.environ.get("REPLAY_SPEEDUP", "500"))
    seed = int(os.environ["SEED"]) if os.environ.get("SEED") else None
    # NVIDIA's synthetic run (USE_SYNTHETIC_DATA=1) evaluates nothing
    replay(path, speedup, seed, skip_eval="--skip-eval" in sys.argv, printing=rank == 0)
    return 0


def replay(path, speedup, seed=None, skip_eval=False, printing=True):
    """Print the ``:::MLLOG`` events of the log ``path`` at their original distance from the
    first divided by ``speedup``, each with ``time_ms`` the time it is printed and the ``seed``
    event's value ``seed`` (unless None); ``skip_eval`` leaves the ``eval_*`` events out;
    ``printing`` False only keeps the time (another rank). Also the replay of the BERT v5.0
    test trainer (tests/data/bert_replay/replay.py), which imports it from this file."""
    with open(path) as fh:
        events = [json.loads(line[len(PREFIX) :]) for line in fh if line.startswith(PREFIX)]
    if skip_eval:
        events = [e for e in events if not e["key"].startswith("eval_")]
    first, start = events[0]["time_ms"], time.time()
    for event in events:
        due = start + (event["time_ms"] - first) / 1000.0 / speedup
        time.sleep(max(0.0, due - time.time()))
        if not printing:
            continue
        event["time_ms"] = int(time.time() * 1000)
        if event["key"] == "seed" and seed is not None:
            event["value"] = seed
        print(PREFIX + json.dumps(event))
        sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
